"""The cursor query every list route takes: limit, order, after, before (spec §1.3, §5.8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query


@dataclass(frozen=True, slots=True)
class ListQuery:
    limit: int
    order: Literal["asc", "desc"]
    after: str | None
    before: str | None


def list_query(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
    before: Annotated[str | None, Query()] = None,
) -> ListQuery:
    return ListQuery(limit=limit, order=order, after=after, before=before)


ListDep = Annotated[ListQuery, Depends(list_query)]
