"""Point Azure credentials at agentbox's own token route, so no Azure SDK test leaves the machine.

DefaultAzureCredential tries, in order, environment secrets, workload identity, managed identity
and local tools. With IDENTITY_ENDPOINT/IDENTITY_HEADER set it takes the App Service
managed-identity path and never probes the cloud metadata address; with the AZURE_* secrets
removed, EnvironmentCredential stays inactive and never calls the login service (spec §3.4).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer

# Every variable that would steer a credential anywhere but our loopback token route.
FOREIGN_IDENTITY_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
)


def use_local_identity(monkeypatch: pytest.MonkeyPatch, server: LiveServer, identity_header: str) -> None:
    """Make DefaultAzureCredential fetch its token from `server` and trust its certificate."""
    assert server.url.startswith("https://127.0.0.1:"), server.url
    for name in FOREIGN_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{server.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", identity_header)
    # azure-core's requests session trusts this bundle for the token route and the API alike.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.tls_cert))


def start_azure_server(data_dir: Path, model_base_url: str, identity_header: str) -> LiveServer:
    """A live agentbox as the Azure SDK tests need it: HTTPS with its own certificate, the token
    route on, and the scripted model behind it."""
    return LiveServer(
        data_dir,
        API_KEY,
        args=["--tls-self-signed"],
        AGENTBOX_MODEL_BASE_URL=model_base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EXEC_TIMEOUT_S="20",
        AGENTBOX_IDENTITY_HEADER=identity_header,
    ).start()
