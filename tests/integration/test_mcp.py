"""The MCP server at /mcp with the official MCP Python client over loopback: sessions and their
containers, stateless clients, figures, files, errors and authentication."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import mcp
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import BlobResourceContents, CallToolResult, EmbeddedResource, ImageContent, TextContent

from tests.conftest import API_KEY
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow

IDENTITY_HEADER = "mcp-identity-header"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module, with the token route on so access tokens can be tried too."""
    live = LiveServer(
        tmp_path_factory.mktemp("mcp") / "data", API_KEY, AGENTBOX_IDENTITY_HEADER=IDENTITY_HEADER
    ).start()
    yield live
    live.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        yield client


@asynccontextmanager
async def connect(
    server: LiveServer, *, stateless: bool = False, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """A client session: the 2025 handshake (an MCP session) or the stateless 2026-07-28 protocol."""
    async with (
        httpx2.AsyncClient(headers=AUTH if headers is None else headers, timeout=60) as client,
        streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        if stateless:
            await session.discover()
        else:
            await session.initialize()
        yield session


def run(body: Callable[[], Awaitable[None]]) -> None:
    anyio.run(body)


async def call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await session.call_tool(tool, arguments)


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def container_of(result: CallToolResult) -> str:
    container_id = result.structured_content["container_id"]
    assert isinstance(container_id, str) and container_id.startswith("cntr_")
    assert f"container_id: {container_id}" in text(result)  # what a model reads to pass it back
    return container_id


# --- tools and sessions -------------------------------------------------------------------------------
def test_tools_are_described_for_a_model(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server) as session:
            assert session.protocol_version == "2025-11-25"
            listed = {tool.name: tool for tool in (await session.list_tools()).tools}

        assert set(listed) == {"run_python", "list_files", "read_file", "write_file", "get_image"}
        for tool in listed.values():
            assert tool.description and "container_id" in tool.description
            assert "container_id" in tool.input_schema["properties"]
            assert "container_id" not in tool.input_schema.get("required", [])
        assert listed["run_python"].input_schema["required"] == ["code"]
        assert "/mnt/data" in (listed["run_python"].description or "")
        assert listed["read_file"].annotations is not None and listed["read_file"].annotations.read_only_hint

    run(body)


def test_a_session_keeps_its_state_in_one_container(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server) as session:
            first = await call(session, "run_python", code="x = 6 * 7\nprint('set')")
            second = await call(session, "run_python", code="print(x)")

        assert not first.is_error and not second.is_error
        assert container_of(first) == container_of(second)
        assert "(a new container)" in text(first) and "new container" not in text(second)
        assert second.structured_content["stdout"] == "42\n"
        assert text(second).splitlines()[0] == "42"
        assert second.structured_content["status"] == "ok"

    run(body)


def test_two_sessions_get_two_containers(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server) as one, connect(server) as two:
            a = await call(one, "run_python", code="secret = 'one'")
            b = await call(two, "run_python", code="print(secret)")

        assert container_of(a) != container_of(b)
        assert b.is_error and "NameError: name 'secret' is not defined" in text(b)

    run(body)


def test_a_figure_comes_back_as_a_png_image(server: LiveServer) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('q')\nplt.show()"

    async def body() -> None:
        async with connect(server) as session:
            result = await call(session, "run_python", code=code)
            (figure,) = result.structured_content["images"]
            again = await call(session, "get_image", path=figure["path"])

        images = [block for block in result.content if isinstance(block, ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        png = base64.b64decode(images[0].data)
        assert png.startswith(PNG_MAGIC) and png[12:16] == b"IHDR"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 100 and height > 100
        assert figure["path"].startswith("/mnt/data/figures/") and figure["bytes"] == len(png)

        (shown,) = [block for block in again.content if isinstance(block, ImageContent)]
        assert base64.b64decode(shown.data) == png and shown.mime_type == "image/png"

    run(body)


def test_an_exception_is_a_tool_error_with_its_traceback(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server) as session:
            result = await call(session, "run_python", code="def f():\n    return 1 / 0\n\nf()")

        assert result.is_error
        said = text(result)
        assert "Traceback (most recent call last)" in said and "return 1 / 0" in said
        assert "ZeroDivisionError: division by zero" in said
        error = result.structured_content["error"]
        assert error["name"] == "ZeroDivisionError" and error["value"] == "division by zero"
        assert result.structured_content["status"] == "error"

    run(body)


def test_output_arrives_as_progress_while_the_cell_runs(server: LiveServer) -> None:
    code = "import time\nfor i in range(3):\n    print(f'step {i}', flush=True)\n    time.sleep(0.3)"

    async def body() -> None:
        seen: list[tuple[float, str | None]] = []

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((anyio.current_time(), message))

        async with connect(server) as session:
            started = anyio.current_time()
            result = await session.call_tool("run_python", {"code": code}, progress_callback=progress)
            ended = anyio.current_time()

        assert "step 2" in text(result)
        assert "".join(message or "" for _, message in seen) == "step 0\nstep 1\nstep 2\n"
        assert seen[0][0] - started < (ended - started) - 0.4  # the first line came long before the end

    run(body)


def test_concurrent_first_calls_of_a_session_share_one_container(server: LiveServer) -> None:
    async def body() -> None:
        results: list[CallToolResult] = []

        async def one(session: ClientSession, n: int) -> None:
            results.append(await call(session, "run_python", code=f"print({n})"))

        async with connect(server) as session, anyio.create_task_group() as group:
            for n in range(3):
                group.start_soon(one, session, n)

        assert len({container_of(result) for result in results}) == 1

    run(body)


# --- stateless clients (protocol 2026-07-28: no session) ----------------------------------------------
def test_a_stateless_call_gets_a_new_container_unless_it_names_one(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server) as stateful, connect(server, stateless=True) as stateless:
            assert stateless.protocol_version == "2026-07-28"
            theirs = container_of(await call(stateful, "run_python", code="owner = 'session'"))

            first = await call(stateless, "run_python", code="n = 7")
            mine = container_of(first)
            assert "(a new container)" in text(first)
            fresh = await call(stateless, "run_python", code="print(n)")
            again = await call(stateless, "run_python", code="print(n * 6)", container_id=mine)

        assert mine != theirs and container_of(fresh) not in (mine, theirs)
        assert fresh.is_error and "NameError" in text(fresh)
        assert not again.is_error and container_of(again) == mine
        assert again.structured_content["stdout"] == "42\n"

    run(body)


def test_an_unknown_container_id_is_a_tool_error(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server, stateless=True) as session:
            result = await call(session, "run_python", code="print(1)", container_id="cntr_nosuch")

        assert result.is_error and "cntr_nosuch" in text(result)

    run(body)


def test_a_deleted_session_container_is_replaced(server: LiveServer, http: httpx.Client) -> None:
    async def body() -> None:
        async with connect(server) as session:
            old = container_of(await call(session, "run_python", code="v = 1"))
            assert (await anyio.to_thread.run_sync(http.delete, f"/v1/containers/{old}")).status_code == 200
            result = await call(session, "run_python", code="print('v' in globals())")
            again = await call(session, "run_python", code="v = 2\nprint(v)")

        assert container_of(result) != old and result.structured_content["stdout"] == "False\n"
        assert container_of(again) == container_of(result)

    run(body)


# --- files --------------------------------------------------------------------------------------------
def test_a_written_file_is_read_run_listed_and_downloadable(server: LiveServer, http: httpx.Client) -> None:
    csv = "quarter,revenue\nQ1,10\nQ2,32\n"
    blob = bytes(range(256)) * 4

    results: dict[str, CallToolResult] = {}

    async def body() -> None:
        async with connect(server) as session:
            results["wrote"] = await call(session, "write_file", path="/mnt/data/sales.csv", content=csv)
            encoded = base64.b64encode(blob).decode()
            results["binary"] = await call(
                session, "write_file", path="blob.bin", content=encoded, encoding="base64"
            )
            results["read"] = await call(session, "read_file", path="sales.csv")
            results["read_binary"] = await call(session, "read_file", path="/mnt/data/blob.bin")
            results["summed"] = await call(
                session,
                "run_python",
                code="import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\n"
                "print(df.revenue.sum())\ndf.to_csv('/mnt/data/out.csv', index=False)",
            )
            results["listed"] = await call(session, "list_files")
            results["missing"] = await call(session, "read_file", path="nope.txt")

    run(body)
    container_id = container_of(results["wrote"])
    assert results["wrote"].structured_content["path"] == "/mnt/data/sales.csv"
    assert results["binary"].structured_content["bytes"] == len(blob)

    read = results["read"]
    assert isinstance(read.content[0], TextContent) and read.content[0].text == csv
    assert read.structured_content["encoding"] == "text"
    (resource,) = [b.resource for b in results["read_binary"].content if isinstance(b, EmbeddedResource)]
    assert isinstance(resource, BlobResourceContents) and base64.b64decode(resource.blob) == blob
    assert resource.uri == "file:///mnt/data/blob.bin" and resource.mime_type == "application/octet-stream"

    summed = results["summed"]
    assert summed.structured_content["stdout"] == "42\n" and container_of(summed) == container_id
    assert [f["path"] for f in summed.structured_content["files"]] == ["/mnt/data/out.csv"]

    listed_paths = {f["path"] for f in results["listed"].structured_content["files"]}
    assert {"/mnt/data/sales.csv", "/mnt/data/blob.bin", "/mnt/data/out.csv"} <= listed_paths
    assert "/mnt/data/sales.csv" in text(results["listed"])
    assert results["missing"].is_error and "list_files" in text(results["missing"])

    over_http = http.get(f"/v1/containers/{container_id}/files", params={"limit": 100}).json()["data"]
    by_path = {f["path"]: f for f in over_http}
    assert {"/mnt/data/sales.csv", "/mnt/data/blob.bin", "/mnt/data/out.csv"} <= set(by_path)
    content = http.get(f"/v1/containers/{container_id}/files/{by_path['/mnt/data/sales.csv']['id']}/content")
    assert content.content == csv.encode()


def test_long_text_is_cut_and_a_non_image_is_refused(server: LiveServer) -> None:
    content = ("é" * 99 + "\n") * 2000  # 398000 bytes of two-byte characters: the cut splits one
    outcome: list[CallToolResult] = []

    async def body() -> None:
        async with connect(server) as session:
            await call(session, "write_file", path="big.txt", content=content)
            outcome.append(await call(session, "read_file", path="big.txt"))
            outcome.append(await call(session, "get_image", path="big.txt"))
            outcome.append(await call(session, "write_file", path="sub/dir.txt", content="x"))

    run(body)
    read, image, nested = outcome
    first = read.content[0]
    assert isinstance(first, TextContent) and not read.is_error
    shown, note = first.text.split("\n[… ")
    assert shown.encode() == content.encode()[: 256 * 1024 - 1]  # whole characters only
    assert note.startswith("truncated: the first 262144 of 398000 bytes")
    assert image.is_error and "not a PNG" in text(image)
    assert nested.is_error and "run_python" in text(nested)


# --- authentication -----------------------------------------------------------------------------------
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"api-key": "sk-wrong"}],
    ids=["no key", "wrong bearer", "wrong api-key"],
)
def test_without_a_valid_key_the_answer_is_openais_401(server: LiveServer, headers: dict[str, str]) -> None:
    response = httpx.post(f"{server.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
    assert "API key" in error["message"]


def test_the_official_client_fails_on_a_wrong_key(server: LiveServer) -> None:
    async def body() -> None:
        async with connect(server, headers={"Authorization": "Bearer sk-wrong"}) as session:
            await session.list_tools()

    with pytest.raises(ExceptionGroup) as raised:
        run(body)
    assert raised.group_contains(mcp.MCPError)  # the refused handshake, as the SDK reports it


def test_an_api_key_header_or_an_access_token_is_accepted(server: LiveServer) -> None:
    token = httpx.get(
        f"{server.url}/msi/token?api-version=2019-08-01&resource=https://ml.azure.com",
        headers={"X-IDENTITY-HEADER": IDENTITY_HEADER},
    ).json()["access_token"]

    async def body() -> None:
        for headers in ({"api-key": API_KEY}, {"Authorization": f"Bearer {token}"}):
            async with connect(server, headers=headers) as session:
                result = await call(session, "run_python", code="print(2 + 3)")
            assert result.structured_content["stdout"] == "5\n"

    run(body)


def test_an_older_handshake_client_over_plain_http(server: LiveServer) -> None:
    """What a 2025-06-18 client (a desktop app, mcp-remote) sends, step by step."""
    with httpx.Client(base_url=server.url, headers={**AUTH, **MCP_HEADERS}, timeout=60) as client:
        opened = client.post("/mcp", json=INITIALIZE)
        assert opened.status_code == 200
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        assert _message(opened)["result"]["protocolVersion"] == "2025-06-18"
        ack = client.post(
            "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
        )
        assert ack.status_code == 202
        called = client.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "run_python", "arguments": {"code": "print(sum(range(10)))"}},
            },
            headers=session,
        )
        result = _message(called)["result"]
        assert result["content"][0]["text"].startswith("45\n") and result["isError"] is False
        assert client.delete("/mcp", headers=session).status_code == 200


def _message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or a one-event SSE answer."""
    if response.headers["content-type"].startswith("application/json"):
        return dict(response.json())
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    messages = [json.loads(d) for d in data if d]
    return dict(next(m for m in messages if "id" in m))
