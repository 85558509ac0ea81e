"""GET /msi/token: the App Service managed-identity protocol, so Azure credentials work locally.

`DefaultAzureCredential` picks this route up from `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` and calls
`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...` with `X-IDENTITY-HEADER` (spec §3.4).
The route exists only when `AGENTBOX_IDENTITY_HEADER` is set; app.py leaves it out otherwise.
The header value is the shared secret: whoever knows it gets tokens that `require_key` accepts.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from agentbox.access_tokens import TokenSigner
from agentbox.errors import InvalidRequest, Unauthorized

router = APIRouter(tags=["identity"])

PROTOCOL_VERSION = "2019-08-01"


def get_signer(request: Request) -> TokenSigner:
    signer: TokenSigner = request.app.state.token_signer
    return signer


def require_identity_header(
    request: Request,
    identity_header: Annotated[str | None, Header(alias="X-IDENTITY-HEADER")] = None,
) -> None:
    expected: str = request.app.state.identity_header
    if identity_header is None:
        raise Unauthorized("The X-IDENTITY-HEADER header is missing.", code="missing_identity_header")
    if not hmac.compare_digest(identity_header.encode(), expected.encode()):
        raise Unauthorized("The X-IDENTITY-HEADER header is wrong.", code="invalid_identity_header")


@router.get("/msi/token", dependencies=[Depends(require_identity_header)])
async def managed_identity_token(
    signer: Annotated[TokenSigner, Depends(get_signer)],
    resource: Annotated[str, Query(min_length=1)],
    api_version: Annotated[str, Query(alias="api-version")],
) -> dict[str, Any]:
    if api_version != PROTOCOL_VERSION:
        raise InvalidRequest(
            f"Unsupported api-version '{api_version}'; the token route speaks {PROTOCOL_VERSION}.",
            param="api-version",
        )
    token = signer.issue(resource)
    return {
        "access_token": token.token,
        # The protocol sends Unix seconds as a string.
        "expires_on": str(token.expires_on),
        "resource": token.resource,
        "token_type": "Bearer",
    }
