"""Percentiles and the one result row every benchmark reports."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured thing: p50/p95 over `n` samples, in `unit`."""

    name: str
    unit: str
    p50: float
    p95: float
    n: int

    @classmethod
    def of(cls, name: str, samples: list[float], unit: str = "ms") -> Figure:
        return cls(name, unit, statistics.median(samples), percentile(samples, 0.95), len(samples))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]
