"""The Containers API with the real openai SDK over loopback, and the ContainerService on a real
sandbox: memory caps in the session's cgroup, idle expiry under a stepped wall clock, file removal
that follows no symlink."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agentbox.engine.containers import MEMORY_TIERS, ContainerService, host_memory_mb
from agentbox.errors import InvalidRequest, NotFound
from agentbox.sandbox import ExecutionStatus
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import ContainerRecord, FileRecord
from tests.sandbox_fixtures import Harness, requires_sandbox, skip_reason, worker_uid

pytestmark = pytest.mark.slow

CSV = b"quarter,revenue\nQ1,10\nQ2,12\n"


# --- the HTTP surface, through the SDK ---------------------------------------------------------------
def test_create_list_page_retrieve_and_delete(client: openai.OpenAI) -> None:
    name = f"pager-{time.monotonic_ns()}"
    made = [client.containers.create(name=name) for _ in range(3)]
    other = client.containers.create(
        name=name + "-other", expires_after={"anchor": "last_active_at", "minutes": 5}
    )

    first = made[0]
    assert first.object == "container" and first.name == name and first.status == "running"
    assert first.expires_after is not None and first.expires_after.minutes == 20
    assert first.expires_after.anchor == "last_active_at"
    assert other.expires_after is not None and other.expires_after.minutes == 5

    page = client.containers.list(extra_query={"name": name}, limit=2)
    assert [c.id for c in page.data] == [made[2].id, made[1].id] and page.has_more
    everything = list(
        client.containers.list(extra_query={"name": name}, limit=2)
    )  # the SDK pages on after=<last id>
    assert [c.id for c in everything] == [c.id for c in reversed(made)]
    ascending = list(client.containers.list(extra_query={"name": name}, limit=1, order="asc"))
    assert [c.id for c in ascending] == [c.id for c in made]

    retrieved = client.containers.retrieve(first.id)
    assert retrieved.id == first.id and retrieved.created_at == first.created_at
    client.containers.delete(first.id)  # the SDK casts the answer to None
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(first.id)
    assert [c.id for c in client.containers.list(extra_query={"name": name})] == [made[2].id, made[1].id]


def test_wire_shape_and_last_active_at_refreshed_by_an_operation(http: httpx.Client) -> None:
    created = http.post("/containers", json={"name": "shape", "memory_limit": "1g"}).json()
    assert set(created) >= {"id", "object", "name", "created_at", "status", "last_active_at", "expires_after",
                            "memory_limit"}  # fmt: skip
    assert created["memory_limit"] == "1g" and created["id"].startswith("cntr_")
    time.sleep(1.1)
    http.get(f"/containers/{created['id']}/files")  # a file operation is a use of the container
    again = http.get(f"/containers/{created['id']}").json()
    assert again["last_active_at"] > created["last_active_at"]
    deleted = http.delete(f"/containers/{created['id']}").json()
    assert deleted == {"id": created["id"], "object": "container.deleted", "deleted": True}


def test_files_by_upload_by_file_id_and_json_then_content_and_delete(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    source = client.files.create(file=("quarters.csv", CSV), purpose="assistants")
    notes = client.files.create(file=("notes.txt", b"from json\n"), purpose="user_data")
    container = client.containers.create(name="files", file_ids=[source.id])

    listed = client.containers.files.list(container.id)
    assert [(f.path, f.source, f.bytes) for f in listed] == [("/mnt/data/quarters.csv", "user", len(CSV))]

    uploaded = client.containers.files.create(container.id, file=("data.bin", io.BytesIO(b"\x00\x01raw")))
    assert uploaded.object == "container.file" and uploaded.container_id == container.id
    assert (uploaded.path, uploaded.source, uploaded.bytes) == ("/mnt/data/data.bin", "user", 5)
    by_id = client.containers.files.create(container.id, file_id=notes.id)  # multipart, a file_id field
    assert by_id.path == "/mnt/data/notes.txt" and by_id.bytes == len(b"from json\n")
    as_json = http.post(f"/containers/{container.id}/files", json={"file_id": source.id})
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["path"] == "/mnt/data/quarters.csv"

    content = client.containers.files.content.retrieve(uploaded.id, container_id=container.id)
    assert content.read() == b"\x00\x01raw"
    copied = client.containers.files.content.retrieve(as_json.json()["id"], container_id=container.id)
    assert copied.read() == CSV
    client.files.delete(source.id)  # the container holds its own copy
    assert (
        client.containers.files.content.retrieve(as_json.json()["id"], container_id=container.id).read()
        == CSV
    )

    retrieved = client.containers.files.retrieve(by_id.id, container_id=container.id)
    assert retrieved.id == by_id.id and retrieved.path == by_id.path
    paths = sorted(f.path for f in client.containers.files.list(container.id, limit=1))
    assert paths == ["/mnt/data/data.bin", "/mnt/data/notes.txt", "/mnt/data/quarters.csv"]

    deleted = http.delete(f"/containers/{container.id}/files/{uploaded.id}").json()
    assert deleted == {"id": uploaded.id, "object": "container.file.deleted", "deleted": True}
    client.containers.files.delete(by_id.id, container_id=container.id)
    assert [f.path for f in client.containers.files.list(container.id)] == ["/mnt/data/quarters.csv"]
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(uploaded.id, container_id=container.id)
    client.containers.delete(container.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.list(container.id)


def test_a_memory_tier_beyond_the_host_is_refused_in_words(client: openai.OpenAI) -> None:
    beyond = [tier for tier, mb in MEMORY_TIERS.items() if mb > host_memory_mb()]
    if not beyond:
        pytest.skip("this host has memory for every tier (64 GiB or more)")
    with pytest.raises(openai.BadRequestError) as refused:
        client.containers.create(name="big", extra_body={"memory_limit": beyond[0]})  # 1.109 lacks the kwarg
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "memory_limit"
    assert f"'{beyond[0]}'" in error["message"] and "at most" in error["message"]
    assert "choose 1g" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}}, "expires_after.minutes"),
        ({"name": "x", "expires_after": {"anchor": "created_at", "minutes": 5}}, "expires_after.anchor"),
        ({"name": "x", "memory_limit": "2g"}, "memory_limit"),
        (
            {"name": "x", "network_policy": {"type": "allowlist", "allowed_domains": ["a.b"]}},
            "network_policy.type",
        ),
        ({"name": "x", "file_ids": "file-1"}, "file_ids"),
    ],
)
def test_bad_container_bodies_get_a_400_naming_the_parameter(
    http: httpx.Client, body: dict[str, object], param: str
) -> None:
    answer = http.post("/containers", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def test_bad_file_requests_and_unknown_ids(http: httpx.Client) -> None:
    container = http.post("/containers", json={"name": "bad"}).json()["id"]
    files = f"/containers/{container}/files"
    assert http.post("/containers", json={"name": "x", "file_ids": ["file-nope"]}).status_code == 404
    assert http.get("/containers/cntr_nope").status_code == 404
    assert http.delete("/containers/cntr_nope").status_code == 404
    assert http.get(f"{files}/cfile_nope").status_code == 404
    assert http.get(f"{files}/cfile_nope/content").status_code == 404
    assert http.post(files, json={"file_id": "file-nope"}).status_code == 404
    for bad in (
        http.post(files, json=["file_id"]),
        http.post(files, content=b"{broken", headers={"Content-Type": "application/json"}),
        http.post(files, data={"purpose": "nothing here"}),
        http.post(files, data={"file": "not a file part"}),
        http.post(files, files={"file": ("", b"x")}),
    ):
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["type"] == "invalid_request_error"
    assert http.get(files, params={"after": "cfile_nope"}).status_code == 400
    assert http.get(files, params={"limit": 101}).status_code == 400


# --- the service on a real sandbox ---------------------------------------------------------------------
class Clock:
    """The wall clock the service reads, stepped by the test (minutes must not pass for real)."""

    def __init__(self) -> None:
        self.now = int(time.time())

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    if (reason := skip_reason()) is not None:
        pytest.skip(reason)
    h = Harness(tmp_path_factory.mktemp("sessions"), uid_base=worker_uid(1_350_000))  # 256 MiB by default
    yield h
    h.close()


class Service:
    def __init__(self, h: Harness, root: Path, memory_max_mb: int | None = None) -> None:
        self.h = h
        self.store = Store(root / "db.sqlite3")
        self.store.migrate()
        self.blobs = BlobStore(root / "files", 1 << 30)
        self.clock = Clock()
        self.service = ContainerService(
            self.store, self.blobs, h.manager, memory_max_mb=memory_max_mb, clock=self.clock
        )

    def upload(self, filename: str, data: bytes) -> str:
        async def save() -> str:
            path, size = await self.blobs.save_bytes(f"file-{filename}", data)
            record = FileRecord(f"file-{filename}", 0, filename, size, "assistants", path)
            return (await self.store.add(record)).id

        return self.h.call(save())

    def run(self, container_id: str, code: str) -> tuple[ExecutionStatus, str, tuple[str, ...]]:
        async def go() -> tuple[ExecutionStatus, str, tuple[str, ...]]:
            files = await self.service.use(container_id)
            execution = await self.h.manager.execute(container_id, code, files)
            await self.service.collect(container_id, execution.changed_files)
            return execution.status, execution.logs, execution.changed_files

        return self.h.call(go())


@requires_sandbox
@pytest.mark.cgroup_v2
def test_a_container_gets_its_memory_tier_as_the_session_cap(harness: Harness, tmp_path: Path) -> None:
    s = Service(harness, tmp_path)
    container = harness.call(s.service.create("mem", memory_limit="1g"))
    allocate = (
        "block = bytearray(400 << 20)\nblock[::4096] = b'x' * len(block[::4096])\nprint(len(block) >> 20)"
    )
    status, logs, _ = s.run(container.id, allocate)
    assert status is ExecutionStatus.OK and logs.strip() == "400", logs
    assert harness.manager.memory_limit(container.id) == MEMORY_TIERS["1g"] << 20
    # The same bounded allocation in a session with the manager's own 256 MiB cap is OOM-killed.
    plain = harness.run(allocate, key="plain-thread")
    assert plain.status is ExecutionStatus.KILLED and plain.oom
    assert harness.manager.memory_limit("plain-thread") == harness.config.memory_mb << 20
    harness.call(harness.manager.close("plain-thread"))
    harness.call(s.service.delete(container.id))
    assert not harness.manager.has_session(container.id)


@requires_sandbox
def test_a_pooled_sandbox_claimed_by_a_container_gets_the_containers_cap(tmp_path: Path) -> None:
    h = Harness(tmp_path / "sessions", uid_base=worker_uid(1_360_000), pool_size=1)
    try:
        for _ in range(600):
            if h.manager.pool_statistics()["ready"]:
                break
            h.wait(0.1)
        assert h.manager.pool_statistics()["ready"] == 1
        pooled = h.manager._pool[0]
        assert pooled.cgroup is not None and pooled.cgroup.memory_limit() == 256 << 20
        s = Service(h, tmp_path)
        container = h.call(s.service.create("pool", memory_limit="1g"))
        status, logs, _ = s.run(container.id, "print('claimed')")
        assert status is ExecutionStatus.OK, logs
        assert h.manager._sessions[container.id] is pooled  # claimed, not started anew
        assert h.manager.memory_limit(container.id) == 1 << 30
    finally:
        h.close()


@requires_sandbox
def test_a_tier_above_the_configured_maximum_is_refused(harness: Harness, tmp_path: Path) -> None:
    s = Service(harness, tmp_path, memory_max_mb=2048)
    with pytest.raises(InvalidRequest) as refused:
        harness.call(s.service.create("big", memory_limit="4g"))
    assert refused.value.param == "memory_limit"
    assert "4096 MiB" in refused.value.message and "at most 2048 MiB" in refused.value.message
    assert harness.call(s.service.create("ok", memory_limit="1g")).memory_limit == "1g"


@requires_sandbox
def test_idle_past_expires_after_the_container_expires_for_good(harness: Harness, tmp_path: Path) -> None:
    s = Service(harness, tmp_path)
    source = s.upload("in.csv", CSV)
    container = harness.call(
        s.service.create("expiring", file_ids=[source], expires_after_minutes=1, memory_limit="1g")
    )
    status, logs, changed = s.run(
        container.id, "x = 41\nopen('/mnt/data/out.txt', 'w').write(open('/mnt/data/in.csv').read())"
    )
    assert status is ExecutionStatus.OK, logs
    assert changed == ("out.txt",)
    out = harness.call(s.service.file_for_path(container.id, "out.txt"))
    assert out is not None and out.source == "assistant" and out.bytes == len(CSV)
    files = harness.call(s.service.list_files(container.id)).items
    blobs = [harness.call(s.blobs.local_path(f.blob)) for f in files]
    assert len(blobs) == 2 and all(p.exists() for p in blobs)

    s.clock.now += 50
    assert harness.call(s.service.get(container.id)).status == "running"  # a use: idle time starts again
    s.clock.now += 50
    assert harness.call(s.service.sweep()) == 0
    _, logs, _ = s.run(container.id, "print(x + 1)")
    assert logs.strip() == "42", logs  # same session: variables kept across uses
    assert harness.manager.has_session(container.id)

    s.clock.now += 60  # a minute without any use
    assert harness.call(s.service.sweep()) == 1
    expired = harness.call(s.service.get(container.id))
    assert expired.status == "expired"
    assert not harness.manager.has_session(container.id)
    assert harness.call(s.service.list_files(container.id)).items == []
    assert not any(p.exists() for p in blobs)
    with pytest.raises(InvalidRequest) as refused:
        harness.call(s.service.use(container.id))
    assert refused.value.message == "Container is expired." and refused.value.param is None
    with pytest.raises(InvalidRequest):
        harness.call(s.service.add_upload(container.id, "late.txt", io.BytesIO(b"late")))
    s.clock.now += 3600
    assert harness.call(s.service.get(container.id)).status == "expired"  # never revived


@requires_sandbox
def test_expiry_is_applied_on_access_without_the_sweep(harness: Harness, tmp_path: Path) -> None:
    s = Service(harness, tmp_path)
    container = harness.call(s.service.create("lazy", expires_after_minutes=2))
    s.run(container.id, "y = 1")
    s.clock.now += 120
    listed = harness.call(s.service.list_containers(name="lazy")).items
    assert [(c.id, c.status) for c in listed] == [(container.id, "expired")]
    assert not harness.manager.has_session(container.id)
    with pytest.raises(InvalidRequest):
        harness.call(s.service.use(container.id))
    harness.call(s.service.delete(container.id))
    with pytest.raises(NotFound):
        harness.call(s.service.get(container.id))


@requires_sandbox
def test_deleting_a_file_removes_it_from_the_session_and_follows_no_symlink(
    harness: Harness, tmp_path: Path
) -> None:
    s = Service(harness, tmp_path)
    container = harness.call(s.service.create("rm"))
    added = harness.call(s.service.add_upload(container.id, "doomed.txt", io.BytesIO(b"bye")))
    _, logs, _ = s.run(container.id, "print(open('/mnt/data/doomed.txt').read())")
    assert logs.strip() == "bye", logs
    harness.call(s.service.delete_file(container.id, added.id))
    _, logs, _ = s.run(container.id, "import os; print(os.path.exists('/mnt/data/doomed.txt'))")
    assert logs.strip() == "False", logs

    # The code turns a directory of /mnt/data into a symlink to a host path; removing a file
    # "under" it must not reach the host.
    victim_dir = tmp_path / "host-only"
    victim_dir.mkdir()
    (victim_dir / "victim.txt").write_text("keep me")
    s.run(container.id, f"import os; os.symlink({str(victim_dir)!r}, '/mnt/data/sub')")
    assert harness.call(harness.manager.remove_file(container.id, "sub/victim.txt")) is False
    assert (victim_dir / "victim.txt").read_text() == "keep me"
    assert harness.call(harness.manager.remove_file(container.id, "sub")) is True  # the link itself
    assert (victim_dir / "victim.txt").exists()
    _, logs, _ = s.run(container.id, "import os; print(os.path.lexists('/mnt/data/sub'))")
    assert logs.strip() == "False", logs
    harness.call(s.service.delete(container.id))


@requires_sandbox
def test_the_sweep_task_runs_with_start_and_stops_with_aclose(harness: Harness, tmp_path: Path) -> None:
    s = Service(harness, tmp_path)
    container = harness.call(s.service.create("swept", expires_after_minutes=1))
    s.clock.now += 61

    async def started_then_closed() -> str:
        await s.service.start()
        try:
            for _ in range(100):
                record = await s.store.get(ContainerRecord, container.id)
                if record.status == "expired":
                    return record.status
                await asyncio.sleep(0.05)
            return "running"
        finally:
            await s.service.aclose()

    assert harness.call(started_then_closed()) == "expired"
