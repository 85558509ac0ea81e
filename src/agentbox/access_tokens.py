"""Access tokens: short-lived bearer tokens that agentbox signs itself and accepts besides API keys.

They are what the managed-identity route hands to Azure credentials (spec §3.4), so an Azure
SDK can authenticate without an API key and without the cloud. The format is a compact JWT
with HS256, keyed by a secret that lives in the data dir:

    base64url({"alg":"HS256","typ":"JWT"}) . base64url({"iss","aud","iat","exp"}) . base64url(HMAC)

Only agentbox reads them; clients treat them as opaque strings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from agentbox.errors import Unauthorized

ISSUER = "agentbox"
_HEADER = {"alg": "HS256", "typ": "JWT"}


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_on: int
    resource: str


class TokenSigner:
    """Issues and verifies access tokens with one HMAC-SHA256 secret."""

    def __init__(self, secret: bytes, ttl_s: int = 3600) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 bytes")
        self._secret = secret
        self._ttl_s = ttl_s

    @classmethod
    def from_data_dir(cls, data_dir: Path, ttl_s: int = 3600) -> TokenSigner:
        """The signer of this data dir; its secret is created on first use, readable by the owner only."""
        path = data_dir / "token_secret"
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            data_dir.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_bytes(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                # Another process made it between our read and our create: use theirs.
                return cls.from_data_dir(data_dir, ttl_s)
            with os.fdopen(fd, "w") as handle:
                handle.write(secret.hex() + "\n")
        return cls(secret, ttl_s)

    def issue(self, resource: str, now: int | None = None) -> AccessToken:
        issued = int(time.time()) if now is None else now
        expires = issued + self._ttl_s
        claims = {"iss": ISSUER, "aud": resource, "iat": issued, "exp": expires}
        signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
        token = f"{signing_input}.{_b64(self._sign(signing_input))}"
        return AccessToken(token=token, expires_on=expires, resource=resource)

    def verify(self, token: str, now: int | None = None) -> None:
        """Return if the token is ours and unexpired; raise Unauthorized otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise Unauthorized("Incorrect API key provided.")
        signing_input = f"{parts[0]}.{parts[1]}"
        try:
            signature = _unb64(parts[2])
        except ValueError as exc:
            raise Unauthorized("The access token is malformed.") from exc
        # Compare before decoding anything else, so unsigned input is never parsed.
        if not hmac.compare_digest(signature, self._sign(signing_input)):
            raise Unauthorized("The access token's signature is invalid.")
        try:
            claims = json.loads(_unb64(parts[1]))
            expires = int(claims["exp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("The access token is malformed.") from exc
        if expires <= (int(time.time()) if now is None else now):
            raise Unauthorized("The access token has expired.", code="expired_token")

    def _sign(self, signing_input: str) -> bytes:
        return hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc
