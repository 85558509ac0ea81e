"""The Azure AI Agents flavour: the /v1 routers again under Azure's URL prefixes (spec §3.2, §3.6, §3.7).

One set of handlers serves every flavour; on these prefixes a dependency checks `api-version`.
The subscription, resource group and project in the path are accepted and not interpreted:
every prefix reaches the same store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query

from agentbox.api.deps import require_key
from agentbox.errors import InvalidRequest

PREFIXES = (
    # azure-ai-projects ≤ 1.0.0b10 (`from_connection_string`) and the REST samples.
    "/agents/v1.0/subscriptions/{subscription}/resourceGroups/{group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{project}",
    # azure-ai-agents 1.x and azure-ai-projects ≥ 1.0.0 (`endpoint=`).
    "/api/projects/{project}",
)

API_VERSIONS = ("2024-07-01-preview", "2024-12-01-preview", "2025-05-15-preview", "v1")


def check_api_version(api_version: Annotated[str | None, Query(alias="api-version")] = None) -> None:
    """Refuse versions whose wire format we do not speak; a missing one means the newest we know."""
    if api_version is not None and api_version not in API_VERSIONS:
        raise InvalidRequest(
            f"Unsupported api-version '{api_version}'. Supported versions: {', '.join(API_VERSIONS)}.",
            param="api-version",
            code="unsupported_api_version",
        )


def mount(app: FastAPI, api: APIRouter) -> None:
    """Include `api` under every Azure prefix. Kept out of the OpenAPI schema, which documents
    each operation once (under /v1) rather than three times under clashing operation ids."""
    # require_key is already on `api`; naming it first here makes a stranger get 401 before any
    # 400, and FastAPI's per-request dependency cache runs it only once.
    checks = [Depends(require_key), Depends(check_api_version)]
    for prefix in PREFIXES:
        app.include_router(api, prefix=prefix, dependencies=checks, include_in_schema=False)
