"""Uploads as a user meets them: the per-file cap (413 while the body streams, nothing kept), file
types the code interpreter refuses (the hosted service's 400), zero-byte files and many small ones."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.code_runs import printed_in_new_thread
from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.scripted_model import ScriptedModel

pytestmark = pytest.mark.slow

MiB = 1 << 20


# --- the cap, on a server that takes 1 MB a file ---------------------------------------------------
@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("capped")
    spool = root / "tmp"
    spool.mkdir()
    server = LiveServer(
        root / "data", API_KEY, AGENTBOX_MAX_UPLOAD_MB="1", AGENTBOX_POOL_SIZE="0", TMPDIR=str(spool)
    ).start()
    yield server
    server.stop()


@pytest.fixture
def capped_http(capped: LiveServer) -> Iterator[httpx.Client]:
    with capped.http(timeout_s=60) as http:
        yield http


def kept(server: LiveServer) -> tuple[list[str], list[str]]:
    """What the server holds on disk: its stored blobs and anything in its temp dir."""
    return sorted(os.listdir(server.data_dir / "files")), sorted(os.listdir(server.data_dir.parent / "tmp"))


def listed(http: httpx.Client) -> list[str]:
    return [f["id"] for f in http.get("/files", params={"limit": 100}).json()["data"]]


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "file"
    assert "maximum size of a file is 1 MB" in error["message"]


def test_a_file_at_the_cap_is_stored_byte_for_byte(capped_http: httpx.Client) -> None:
    data = os.urandom(MiB)
    response = capped_http.post("/files", data={"purpose": "assistants"}, files={"file": ("full.csv", data)})
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == MiB
    assert capped_http.get(f"/files/{response.json()['id']}/content").content == data


def test_one_byte_past_the_cap_is_413_and_nothing_is_kept(
    capped: LiveServer, capped_http: httpx.Client
) -> None:
    before_listed, before_disk = listed(capped_http), kept(capped)
    response = capped_http.post(
        "/files", data={"purpose": "assistants"}, files={"file": ("over.csv", b"x" * (MiB + 1))}
    )
    assert_too_large(response)
    assert listed(capped_http) == before_listed
    assert kept(capped) == before_disk


def test_a_chunked_body_is_counted_as_it_streams(capped: LiveServer, capped_http: httpx.Client) -> None:
    """No Content-Length to refuse up front: the file part is counted, and the read stops past the cap."""
    before_listed, before_disk = listed(capped_http), kept(capped)
    boundary = "chunked-upload"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="stream.csv"\r\n\r\n'
        ).encode()
        for _ in range(24):
            yield b"y" * MiB
        yield f"\r\n--{boundary}--\r\n".encode()

    response = capped_http.post(
        "/files", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "content-length" not in response.request.headers
    assert_too_large(response)
    assert listed(capped_http) == before_listed
    assert kept(capped) == before_disk
    assert capped_http.get("/files").status_code == 200  # the connection pool and server carry on


def test_a_declared_length_far_past_the_cap_is_refused_and_the_sdk_sees_413(
    capped: LiveServer, capped_http: httpx.Client
) -> None:
    before_listed, before_disk = listed(capped_http), kept(capped)
    sdk = capped.sdk()
    with sdk, pytest.raises(openai.APIStatusError) as refused:
        sdk.files.create(file=("huge.csv", io.BytesIO(b"z" * (8 * MiB))), purpose="assistants")
    assert refused.value.status_code == 413
    assert "1 MB" in refused.value.message
    assert listed(capped_http) == before_listed
    assert kept(capped) == before_disk


def test_a_container_upload_past_the_cap_is_413_and_the_container_keeps_its_files(
    capped: LiveServer, capped_http: httpx.Client
) -> None:
    container = capped_http.post("/containers", json={"name": "capped"}).json()["id"]
    files = f"/containers/{container}/files"
    small = capped_http.post(files, files={"file": ("small.csv", b"a,b\n")})
    assert small.status_code == 200, small.text
    before_disk = kept(capped)
    response = capped_http.post(files, files={"file": ("big.csv", b"q" * (2 * MiB))})
    assert_too_large(response)
    assert [f["path"] for f in capped_http.get(files).json()["data"]] == ["/mnt/data/small.csv"]
    assert kept(capped) == before_disk


# --- zero-byte and many small files, on the shared server ------------------------------------------
def test_a_zero_byte_file_uploads_downloads_and_reaches_mnt_data_empty(
    client: openai.OpenAI, http: httpx.Client, scripted_model: ScriptedModel
) -> None:
    empty = client.files.create(file=("empty.txt", io.BytesIO(b"")), purpose="assistants")
    assert empty.bytes == 0 and empty.filename == "empty.txt"
    assert client.files.content(empty.id).read() == b""
    download = http.get(f"/files/{empty.id}/content")
    assert download.status_code == 200 and download.headers["content-length"] == "0"

    size = "import json, os\nprint(json.dumps({'size': os.path.getsize('/mnt/data/empty.txt')}))"
    logs = printed_in_new_thread(client, scripted_model, [empty.id], size)
    assert json.loads(logs) == {"size": 0}


def test_two_hundred_small_uploads_are_each_stored_listed_and_byte_identical(http: httpx.Client) -> None:
    sent: dict[str, bytes] = {}
    for index in range(200):
        data = f"row,{index}\n".encode() * (index % 7)  # zero-byte ones among them
        response = http.post(
            "/files", data={"purpose": "assistants"}, files={"file": (f"s{index}.csv", data)}
        )
        assert response.status_code == 200, response.text
        assert response.json()["bytes"] == len(data)
        sent[response.json()["id"]] = data
    assert len(sent) == 200

    seen: list[str] = []
    after: str | None = None
    while True:
        page = http.get("/files", params={"limit": 100, **({"after": after} if after else {})}).json()
        seen.extend(f["id"] for f in page["data"])
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert set(sent) <= set(seen)
    for file_id, data in sent.items():
        assert http.get(f"/files/{file_id}/content").content == data


# --- file types the code interpreter refuses -------------------------------------------------------
def upload(client: openai.OpenAI, name: str, data: bytes = b"\x00\x01") -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def assert_unsupported(
    refused: pytest.ExceptionInfo[openai.BadRequestError], extension: str, param: str
) -> None:
    error = refused.value.body
    assert isinstance(error, dict)
    assert refused.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == "unsupported_file"
    message = error["message"]
    assert f"Files with extensions [{extension}] are not supported for code interpreter" in message
    assert ".csv" in message and ".xlsx" in message and ".pkl" in message  # the supported list is named


def test_any_type_uploads_but_only_supported_types_attach_to_the_code_interpreter(
    client: openai.OpenAI,
) -> None:
    exe = upload(client, "tool.exe")  # purpose=assistants takes any file, as on OpenAI
    bare = upload(client, "Makefile")
    shouted = upload(client, "DATA.CSV", b"a,b\n")
    resources = "tool_resources.code_interpreter.file_ids"

    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.create(
            model="m",
            tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"file_ids": [exe]}},
        )
    assert_unsupported(refused, ".exe", resources)

    assistant = client.beta.assistants.create(
        model="m",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [shouted]}},
    )  # the extension's case does not matter
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.update(assistant.id, tool_resources={"code_interpreter": {"file_ids": [bare]}})
    assert_unsupported(refused, "none", resources)
    assert client.beta.assistants.retrieve(assistant.id).tool_resources.code_interpreter.file_ids == [shouted]

    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.create(tool_resources={"code_interpreter": {"file_ids": [exe]}})
    assert_unsupported(refused, ".exe", resources)

    thread = client.beta.threads.create()
    attachment = {"file_id": exe, "tools": [{"type": "code_interpreter"}]}
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.threads.messages.create(
            thread.id, role="user", content="run it", attachments=[attachment]
        )
    assert_unsupported(refused, ".exe", "message.attachments[0].file_id")
    assert client.beta.threads.messages.list(thread.id).data == []


def test_responses_refuse_an_unsupported_file_in_the_code_interpreter_container(
    client: openai.OpenAI,
) -> None:
    exe = upload(client, "tool.exe")
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="m",
            input="run it",
            tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [exe]}}],
        )
    assert_unsupported(refused, ".exe", "tools.container.file_ids")


def test_the_data_dir_holds_no_partial_files(live_server: LiveServer) -> None:
    """Every upload above finished or was refused: no .partial is left behind."""
    assert [p for p in Path(live_server.data_dir / "files").iterdir() if p.suffix == ".partial"] == []
