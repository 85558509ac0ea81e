"""HTTPS with a self-signed or own certificate, and the managed-identity token route."""

from __future__ import annotations

import base64
import json
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from agentbox.access_tokens import TokenSigner
from agentbox.tls import ensure_self_signed
from tests.conftest import API_KEY
from tests.live_server import LiveServer

IDENTITY_HEADER = "tokens-identity-header"
TOKEN_ROUTE = "/msi/token?api-version=2019-08-01&resource=https://ml.azure.com"
AZURE_ASSISTANTS = "/api/projects/p1/assistants?api-version=v1"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("tls") / "data",
        API_KEY,
        args=["--tls-self-signed"],
        AGENTBOX_IDENTITY_HEADER=IDENTITY_HEADER,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def https(tls_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tls_server.url, verify=tls_server.tls_context(), timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fetch_token(https: httpx.Client) -> str:
    response = https.get(TOKEN_ROUTE, headers={"X-IDENTITY-HEADER": IDENTITY_HEADER})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_certificate_names_loopback_and_its_key_is_private(tls_server: LiveServer) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    cert = x509.load_pem_x509_certificate(tls_server.tls_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    key = tls_server.data_dir / "tls" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_server.data_dir / "token_secret").stat().st_mode) == 0o600


def test_clients_verify_the_certificate_by_name(tls_server: LiveServer) -> None:
    for host in ("127.0.0.1", "localhost"):
        url = f"https://{host}:{tls_server.port}/healthz"
        assert httpx.get(url, verify=tls_server.tls_context()).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_server.url}/healthz", verify=ssl.create_default_context())


def test_token_route_speaks_the_app_service_protocol(https: httpx.Client) -> None:
    before = int(time.time())
    response = https.get(TOKEN_ROUTE, headers={"X-IDENTITY-HEADER": IDENTITY_HEADER})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type"}
    assert body["resource"] == "https://ml.azure.com" and body["token_type"] == "Bearer"
    assert isinstance(body["expires_on"], str)
    assert before + 3000 < int(body["expires_on"]) <= int(time.time()) + 3600
    for path in ("/v1/assistants", AZURE_ASSISTANTS):
        assert https.get(path, headers=bearer(body["access_token"])).status_code == 200


@pytest.mark.parametrize("header", [None, "wrong", IDENTITY_HEADER + "x", ""])
def test_token_route_refuses_without_the_identity_header(https: httpx.Client, header: str | None) -> None:
    headers = {} if header is None else {"X-IDENTITY-HEADER": header}
    response = https.get(TOKEN_ROUTE, headers=headers)
    assert response.status_code == 401
    assert "X-IDENTITY-HEADER" in response.json()["error"]["message"]
    assert "access_token" not in response.text


def test_token_route_refuses_other_protocol_versions(https: httpx.Client) -> None:
    response = https.get(
        "/msi/token?api-version=2017-09-01&resource=https://ml.azure.com",
        headers={"X-IDENTITY-HEADER": IDENTITY_HEADER},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "api-version"


def test_expired_token_is_401(https: httpx.Client, tls_server: LiveServer) -> None:
    # Signed with the server's real secret, so only the expiry can be what is refused.
    signer = TokenSigner.from_data_dir(tls_server.data_dir)
    expired = signer.issue("https://ml.azure.com", now=int(time.time()) - 7200).token
    response = https.get(AZURE_ASSISTANTS, headers=bearer(expired))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_tampered_tokens_are_401(https: httpx.Client) -> None:
    header, claims, signature = fetch_token(https).split(".")
    # Claims that never expire under the genuine signature of other claims.
    longer = json.dumps({"iss": "agentbox", "aud": "x", "iat": 0, "exp": 2**40}).encode()
    forged_claims = base64.urlsafe_b64encode(longer).decode().rstrip("=")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for token in (
        f"{header}.{forged_claims}.{signature}",
        f"{header}.{claims}.{flipped}",
        f"{header}.{claims}.",
        f"{header}.{claims}",
        "not-a-token",
    ):
        response = https.get(AZURE_ASSISTANTS, headers=bearer(token))
        assert response.status_code == 401, token
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_certificate_is_reused_across_restarts(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", API_KEY, args=["--tls-self-signed"])
    server.start()
    try:
        first = server.tls_cert.read_bytes()
        key = (server.data_dir / "tls" / "key.pem").read_bytes()
    finally:
        server.stop()
    server.start()
    try:
        assert server.tls_cert.read_bytes() == first
        assert (server.data_dir / "tls" / "key.pem").read_bytes() == key
        assert httpx.get(f"{server.url}/healthz", verify=server.tls_context()).status_code == 200
    finally:
        server.stop()


def test_own_certificate_and_no_token_route_when_unset(tmp_path: Path) -> None:
    own = ensure_self_signed(tmp_path / "mine")
    server = LiveServer(
        tmp_path / "data", API_KEY, args=["--tls-cert", str(own.cert), "--tls-key", str(own.key)]
    ).start()
    try:
        assert server.url.startswith("https://")
        assert not (server.data_dir / "tls").exists()
        trust = ssl.create_default_context(cafile=own.cert)
        with httpx.Client(base_url=server.url, verify=trust) as https:
            assert https.get("/v1/assistants", headers=bearer(API_KEY)).status_code == 200
            missing = https.get(TOKEN_ROUTE, headers={"X-IDENTITY-HEADER": IDENTITY_HEADER})
            assert missing.status_code == 404
            assert set(missing.json()) == {"error"}
            # Without the route no token is honoured, however well-formed.
            token = TokenSigner(b"k" * 32).issue("https://ml.azure.com").token
            assert https.get(AZURE_ASSISTANTS, headers=bearer(token)).status_code == 401
    finally:
        server.stop()
