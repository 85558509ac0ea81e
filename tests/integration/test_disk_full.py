"""The data dir's disk full: uploads and files the code wrote get a clear error, nothing stored is
corrupt, and the server serves again once space returns.

The server's data dir is a tmpfs of 16 MiB mounted for this module (tests run as root); a filler file
takes all but a little of it, and deleting the filler is "space returns".
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.sandbox_fixtures import cell_seconds
from tests.scripted_model import Code, ScriptedModel, Text

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting the small tmpfs needs root"),
]

MiB = 1 << 20
LEFT_FREE = 2 * MiB  # room for SQLite's few pages; every file below is larger
BIG = 5 * MiB


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("disk-full") / "data"
    data.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "agentbox-test-full", str(data)], check=True
    )
    try:
        live = LiveServer(
            data,
            API_KEY,
            AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
            AGENTBOX_MODEL_API_KEY="scripted",
            AGENTBOX_POOL_SIZE="1",
            AGENTBOX_EXEC_TIMEOUT_S=f"{cell_seconds(20):g}",
        ).start()
        try:
            yield live
        finally:
            live.stop()
    finally:
        if subprocess.run(["umount", str(data)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(data)], check=True)


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.http(timeout_s=60) as http:
        yield http


@pytest.fixture
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with server.sdk() as client:
        yield client


@pytest.fixture
def full(server: LiveServer) -> Iterator[Path]:
    """The data dir full but for LEFT_FREE bytes, for the test's duration (the filler is the path)."""
    filler = server.data_dir / "filler"
    stat = os.statvfs(server.data_dir)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, stat.f_bavail * stat.f_frsize - LEFT_FREE)
    finally:
        os.close(fd)
    yield filler
    filler.unlink(missing_ok=True)


def blobs(server: LiveServer) -> dict[str, bytes]:
    """Every stored file's bytes by name, partial ones included (there must be none)."""
    root = server.data_dir / "files"
    return {p.name: p.read_bytes() for p in root.iterdir()}


def listed(http: httpx.Client) -> list[str]:
    return [f["id"] for f in http.get("/files", params={"limit": 100}).json()["data"]]


def upload(http: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return http.post("/files", data={"purpose": "assistants"}, files={"file": (name, data)})


def assert_disk_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "insufficient_storage"
    assert error["message"].startswith("The server's disk is full: the file could not be stored")


def test_an_upload_past_the_free_space_is_refused_clearly_and_space_returning_heals_it(
    server: LiveServer, http: httpx.Client, full: Path
) -> None:
    kept = os.urandom(100_000)
    full.unlink()  # the earlier file goes in while there is room
    earlier = upload(http, "earlier.csv", kept)
    assert earlier.status_code == 200, earlier.text
    stat = os.statvfs(server.data_dir)
    with open(full, "wb") as filler:
        os.posix_fallocate(filler.fileno(), 0, stat.f_bavail * stat.f_frsize - LEFT_FREE)
    before_listed, before_blobs = listed(http), blobs(server)

    big = os.urandom(BIG)
    assert_disk_full(upload(http, "big.csv", big))
    assert_disk_full(upload(http, "big.csv", big))  # again: the failed one freed what it took
    assert listed(http) == before_listed  # no record of the refused uploads
    assert blobs(server) == before_blobs  # no partial blob; the earlier ones byte-identical
    assert http.get(f"/files/{earlier.json()['id']}/content").content == kept
    assert upload(http, "small.csv", b"a,b\n1,2\n").status_code == 200  # what fits still fits

    full.unlink()  # space returns
    healed = upload(http, "big.csv", big)
    assert healed.status_code == 200, healed.text
    assert http.get(f"/files/{healed.json()['id']}/content").content == big
    assert http.get(f"/files/{earlier.json()['id']}/content").content == kept
    assert http.delete(f"/files/{healed.json()['id']}").status_code == 200  # room for the next test


WRITE_BIG = f"open('/mnt/data/report.csv', 'wb').write(b'r' * {BIG})"
LINKED = "The report: [report.csv](sandbox:/mnt/data/report.csv)"


def test_a_file_the_code_writes_while_the_disk_is_full_fails_the_run_saying_so(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client, scripted_model: ScriptedModel, full: Path
) -> None:
    assistant = client.beta.assistants.create(model="m", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "write the report"}])
    before_listed, before_blobs = listed(http), blobs(server)
    scripted_model.script(Code(WRITE_BIG), Text(LINKED))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )

    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error"
    assert "disk is full" in run.last_error.message and "/mnt/data/report.csv" in run.last_error.message
    assert listed(http) == before_listed and blobs(server) == before_blobs  # nothing half-stored

    full.unlink()  # space returns: the thread runs again and the file is offered
    scripted_model.script(Code(WRITE_BIG), Text(LINKED))
    again = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert again.status == "completed", again.last_error
    answer = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data[0]
    assert answer.content[0].type == "text"
    (note,) = answer.content[0].text.annotations
    assert note.type == "file_path"
    assert client.files.content(note.file_path.file_id).read() == b"r" * BIG


def test_a_response_whose_code_writes_a_file_on_a_full_disk_fails_saying_so(
    server: LiveServer, client: openai.OpenAI, http: httpx.Client, scripted_model: ScriptedModel, full: Path
) -> None:
    scripted_model.script(Code(WRITE_BIG), Text("done"))
    response = client.responses.create(
        model="m",
        input="write the report",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
    )
    assert response.status == "failed"
    assert response.error is not None and "disk is full" in response.error.message
    assert "/mnt/data/report.csv" in response.error.message
    assert [p for p in (server.data_dir / "files").iterdir() if p.suffix == ".partial"] == []

    full.unlink()
    scripted_model.reset()  # the failed response never asked for its answer
    scripted_model.script(Code(WRITE_BIG), Text("done"))
    healed = client.responses.create(
        model="m", input="again", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
    )
    assert healed.status == "completed", healed.error
    call = next(item for item in healed.output if item.type == "code_interpreter_call")
    container = call.container_id
    files = http.get(f"/containers/{container}/files").json()["data"]
    report = next(f for f in files if f["path"] == "/mnt/data/report.csv")
    assert http.get(f"/containers/{container}/files/{report['id']}/content").content == b"r" * BIG
