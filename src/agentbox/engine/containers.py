"""Containers: named sandbox sessions with their own files, memory cap and idle lifetime.

A container is the SessionManager session whose key is the container id (same isolation, limits,
fork server and pool as a thread's). Its files live as blobs, so a session that restarted (or a
server that did) gets them placed again on the next use.

Lifecycle:  running ──unused for expires_after minutes since last_active_at──▶ expired (final: its
            session is closed and its files dropped; use() then refuses with OpenAI's 400)
            running | expired ──delete──▶ (gone)
Every operation on one container (retrieve, file operations, use, collect) refreshes last_active_at,
and a container never expires while code runs in it (busy()). Expiry is applied lazily on each
access and by a sweep task (start()/aclose()).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from agentbox.engine import outputs
from agentbox.errors import InvalidRequest, NotFound, StorageFull
from agentbox.fleet import Sandboxes
from agentbox.ids import new_id, now
from agentbox.sandbox import InputFile, safe_name
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Order, Store
from agentbox.store.records import ContainerFileRecord, ContainerRecord, FileRecord, Page

log = logging.getLogger(__name__)

MEMORY_TIERS: dict[str, int] = {"1g": 1024, "4g": 4096, "16g": 16384, "64g": 65536}
"""OpenAI's memory_limit tiers → the session's memory cap in MiB."""
DEFAULT_TIER = "1g"
MAX_MINUTES = 1440
"""The longest expires_after.minutes accepted (OpenAI's own maximum is not documented)."""
SWEEP_S = 30.0
RUNNING, EXPIRED = "running", "expired"
DATA_DIR = "/mnt/data/"
EXPIRED_MESSAGE = "Container is expired."


def host_memory_mb() -> int:
    """The host's MemTotal in MiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo has no MemTotal line")


def data_name(path: str) -> str:
    """The /mnt/data-relative name of a container file path ("/mnt/data/a.csv" or "a.csv" → "a.csv")."""
    return path[len(DATA_DIR) :] if path.startswith(DATA_DIR) else path.lstrip("/")


class ContainerService:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        sandbox: Sandboxes,
        *,
        idle_minutes: int = 20,
        memory_max_mb: int | None = None,
        clock: Callable[[], int] = now,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._sandbox = sandbox
        self._idle_minutes = idle_minutes
        self._memory_max_mb = memory_max_mb if memory_max_mb is not None else host_memory_mb()
        self._clock = clock
        # Check-and-change of one container's state (refresh, expire, a file's record) is atomic.
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._busy: Counter[str] = Counter()  # containers with code running: never due

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the sweep that expires idle containers."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="agentbox-container-sweep")

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again; lazy expiry still holds meanwhile
                log.exception("container sweep failed")
            await asyncio.sleep(SWEEP_S)

    async def sweep(self) -> int:
        """Expire every running container idle past its time; how many expired."""
        expired = 0
        for record in await self._store.all(ContainerRecord, status=RUNNING):
            if self._due(record):
                expired += (await self._settle(record.id)).status == EXPIRED
        return expired

    # --- containers ---------------------------------------------------------------------------
    async def create(
        self,
        name: str,
        *,
        file_ids: Sequence[str] = (),
        expires_after_minutes: int | None = None,
        memory_limit: str | None = None,
    ) -> ContainerRecord:
        tier = memory_limit or DEFAULT_TIER
        self._check_tier(tier)
        minutes = expires_after_minutes if expires_after_minutes is not None else self._idle_minutes
        if not 1 <= minutes <= MAX_MINUTES:
            raise InvalidRequest(
                f"expires_after.minutes must be between 1 and {MAX_MINUTES}.", param="expires_after.minutes"
            )
        sources = [await self._store.get(FileRecord, file_id) for file_id in dict.fromkeys(file_ids)]
        stamp = self._clock()
        record = await self._store.add(
            ContainerRecord(
                id=new_id("cntr_"),
                created_at=stamp,
                name=name,
                status=RUNNING,
                last_active_at=stamp,
                expires_after_minutes=minutes,
                memory_limit=tier,
            )
        )
        for source in sources:
            await self._add_from(record.id, source)
        return record

    def _check_tier(self, tier: str) -> None:
        memory_mb = MEMORY_TIERS.get(tier)
        if memory_mb is None:
            raise InvalidRequest(
                f"memory_limit must be one of {', '.join(MEMORY_TIERS)}; got {tier!r}.", param="memory_limit"
            )
        if memory_mb > self._memory_max_mb:
            fitting = [t for t, mb in MEMORY_TIERS.items() if mb <= self._memory_max_mb]
            choice = (
                f"choose {' or '.join(fitting)}" if fitting else "no tier fits, so no container can be made"
            )
            raise InvalidRequest(
                f"memory_limit {tier!r} asks for {memory_mb} MiB, but this server gives a container at most "
                f"{self._memory_max_mb} MiB (the host's memory, or AGENTBOX_CONTAINER_MEMORY_MAX_MB): "
                f"{choice}.",
                param="memory_limit",
            )

    async def get(self, container_id: str) -> ContainerRecord:
        """The container (NotFound); an expired one is reported expired, a running one refreshed."""
        return await self._settle(container_id, refresh=True)

    async def list_containers(
        self, *, limit: int = 20, order: Order = "desc", after: str | None = None, name: str | None = None
    ) -> Page[ContainerRecord]:
        """One page of containers, expiry applied (listing is not a use of them)."""
        page = await self._store.page(ContainerRecord, limit=limit, order=order, after=after, name=name)
        items = []
        for record in page.items:
            if self._due(record):
                try:
                    record = await self._settle(record.id)
                except NotFound:
                    continue  # deleted meanwhile
            items.append(record)
        return Page(items, page.has_more)

    async def delete(self, container_id: str) -> None:
        """Remove the container in any state, with its session and files (NotFound if unknown)."""
        async with self._lock:
            await self._store.get(ContainerRecord, container_id)
            await self._store.remove(ContainerRecord, container_id)
        await self._discard(container_id)

    # --- the engine's calls -------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def busy(self, container_id: str) -> AsyncIterator[None]:
        """Code runs in the container meanwhile: it does not expire, however long that takes, and
        its idle time starts when the code ends."""
        self._busy[container_id] += 1
        try:
            yield
        finally:
            self._busy[container_id] -= 1
            if not self._busy[container_id]:
                del self._busy[container_id]
            with contextlib.suppress(NotFound):
                await self._settle(container_id, refresh=True)

    async def use(self, container_id: str) -> list[InputFile]:
        """Ready the container's session for running code: its memory cap and idle time set, and
        every file to place in /mnt/data. NotFound if unknown; InvalidRequest if expired."""
        record = await self._running(container_id)
        await self._sandbox.configure(
            container_id,
            memory_mb=MEMORY_TIERS[record.memory_limit],
            idle_s=record.expires_after_minutes * 60.0,
        )
        files = await self._store.all(ContainerFileRecord, container_id=container_id)
        # place_file takes one path component: a file the code wrote in a subdirectory stays a
        # container file but is not placed again in a fresh session.
        return [
            InputFile(
                name=data_name(f.path),
                source=await self._blobs.local_path(f.blob),
                file_id=f.id,
                blob=f.blob,
            )
            for f in files
            if "/" not in data_name(f.path)
        ]

    async def collect(self, container_id: str, changed: Sequence[str]) -> list[ContainerFileRecord]:
        """After an execution: each changed /mnt/data name becomes a container file (source
        "assistant"; the same path keeps its id), its bytes copied out of the session. Names that
        vanished or grew too large are skipped; an expired container collects nothing."""
        record = await self._settle(container_id, refresh=True)
        if record.status != RUNNING:
            return []
        collected = []
        for name in changed:
            blob = new_id("cblob_")

            async def copy(target: Path, name: str = name) -> int:
                return await self._sandbox.copy_file_out(
                    container_id, name, target, self._blobs.max_file_bytes
                )

            try:
                blob, size = await self._blobs.save_with(blob, copy)
            except (NotFound, InvalidRequest) as exc:
                log.info("container %s: %s not collected: %s", container_id, name, exc)
                continue
            except StorageFull as exc:
                raise StorageFull(outputs.not_stored(name), code=exc.code) from exc
            collected.append(await self._put(container_id, name, blob, size, "assistant"))
        return collected

    async def add_output(self, container_id: str, name: str, data: bytes) -> ContainerFileRecord:
        """Bytes the code produced outside /mnt/data (a figure it displayed) as the container file
        /mnt/data/<name> (source "assistant"); the sandbox's own /mnt/data is not changed."""
        blob, size = await self._blobs.save_stream(new_id("cblob_"), io.BytesIO(data))
        return await self._put(container_id, name, blob, size, "assistant")

    async def file_for_path(self, container_id: str, name: str) -> ContainerFileRecord | None:
        """The container file at /mnt/data/<name> (or that full path), if any."""
        wanted = DATA_DIR + data_name(name)
        files = await self._store.all(ContainerFileRecord, container_id=container_id)
        return next((f for f in files if f.path == wanted), None)

    # --- files --------------------------------------------------------------------------------
    async def add_upload(self, container_id: str, filename: str, stream: BinaryIO) -> ContainerFileRecord:
        """An uploaded file as /mnt/data/<filename>, replacing a file of that path."""
        await self._running(container_id)
        name = _safe(filename, "file")
        blob, size = await self._blobs.save_stream(new_id("cblob_"), stream)
        return await self._put(container_id, name, blob, size, "user")

    async def add_file_from(self, container_id: str, file_id: str) -> ContainerFileRecord:
        """A copy of a /files file as /mnt/data/<its filename>, replacing a file of that path; the
        same file added again while the container's copy is unchanged is that copy."""
        await self._running(container_id)
        return await self._add_from(container_id, await self._store.get(FileRecord, file_id))

    async def _add_from(self, container_id: str, source: FileRecord) -> ContainerFileRecord:
        name = _safe(source.filename, "file_id")
        origin = await self._blobs.local_path(source.path)
        present = await self.file_for_path(container_id, name)
        if present is not None and await asyncio.to_thread(
            _same_file, origin, await self._blobs.local_path(present.blob)
        ):
            return present  # a hard link to these very bytes, not rewritten by the code since

        async def copy(target: Path) -> int:
            return await asyncio.to_thread(_link_or_copy, origin, target)

        try:
            blob, size = await self._blobs.save_with(new_id("cblob_"), copy)
        except FileNotFoundError as exc:
            raise NotFound(f"The content of file '{source.id}' is no longer on the server.") from exc
        return await self._put(container_id, name, blob, size, "user")

    async def list_files(
        self, container_id: str, *, limit: int = 20, order: Order = "desc", after: str | None = None
    ) -> Page[ContainerFileRecord]:
        await self._settle(container_id, refresh=True)
        return await self._store.page(
            ContainerFileRecord, limit=limit, order=order, after=after, container_id=container_id
        )

    async def get_file(self, container_id: str, file_id: str) -> ContainerFileRecord:
        await self._settle(container_id, refresh=True)
        return await self._store.get(ContainerFileRecord, file_id, container_id=container_id)

    async def file_content(self, container_id: str, file_id: str) -> Path:
        """Where the file's bytes are on the host (NotFound when they are gone)."""
        record = await self.get_file(container_id, file_id)
        path = await self._blobs.local_path(record.blob)
        if not path.exists():
            raise NotFound(f"The content of container file '{file_id}' is no longer on the server.")
        return path

    async def delete_file(self, container_id: str, file_id: str) -> None:
        """Remove the file's record, its bytes and, in a live session, /mnt/data/<name>."""
        record = await self.get_file(container_id, file_id)
        await self._store.remove(ContainerFileRecord, file_id)
        await self._blobs.delete(record.blob)
        await self._sandbox.remove_file(container_id, data_name(record.path))

    # --- state --------------------------------------------------------------------------------
    def _due(self, record: ContainerRecord) -> bool:
        return (
            record.status == RUNNING
            and record.id not in self._busy
            and self._clock() - record.last_active_at >= record.expires_after_minutes * 60
        )

    async def _settle(self, container_id: str, *, refresh: bool = False) -> ContainerRecord:
        """The container with expiry applied (NotFound if unknown); refresh: count this as use."""
        async with self._lock:
            record = await self._store.get(ContainerRecord, container_id)
            if record.status != RUNNING:
                return record
            if not self._due(record):
                stamp = self._clock()
                if refresh and stamp != record.last_active_at:
                    record = await self._store.change(ContainerRecord, container_id, last_active_at=stamp)
                if refresh:
                    self._sandbox.touch(container_id)
                return record
            record = await self._store.change(ContainerRecord, container_id, status=EXPIRED)
        log.info("container %s expired after %d idle minutes", container_id, record.expires_after_minutes)
        await self._discard(container_id)
        return record

    async def _running(self, container_id: str) -> ContainerRecord:
        record = await self._settle(container_id, refresh=True)
        if record.status != RUNNING:
            raise InvalidRequest(EXPIRED_MESSAGE)
        return record

    async def _discard(self, container_id: str) -> None:
        """Close the container's session and drop its files (records and bytes)."""
        await self._sandbox.close(container_id)
        files = await self._store.all(ContainerFileRecord, container_id=container_id)
        await self._store.remove_all(ContainerFileRecord, container_id=container_id)
        for f in files:
            await self._blobs.delete(f.blob)

    async def _put(
        self, container_id: str, name: str, blob: str, size: int, source: str
    ) -> ContainerFileRecord:
        """Record new bytes at /mnt/data/<name>. The code's own writes keep the path's file id (the
        session already has those bytes); an upload gets a new id, so the session places it anew."""
        path = DATA_DIR + name
        dropped: list[str] = []
        try:
            async with self._lock:
                container = await self._store.get(ContainerRecord, container_id)
                if container.status != RUNNING:
                    dropped.append(blob)
                    raise InvalidRequest(EXPIRED_MESSAGE)
                files = await self._store.all(ContainerFileRecord, container_id=container_id)
                existing = next((f for f in files if f.path == path), None)
                if existing is not None:
                    dropped.append(existing.blob)
                    if source == "assistant":
                        return await self._store.change(
                            ContainerFileRecord, existing.id, blob=blob, bytes=size, source=source
                        )
                    await self._store.remove(ContainerFileRecord, existing.id)
                return await self._store.add(
                    ContainerFileRecord(
                        id=new_id("cfile_"),
                        created_at=self._clock(),
                        container_id=container_id,
                        path=path,
                        bytes=size,
                        source=source,
                        blob=blob,
                    )
                )
        except NotFound:
            dropped.append(blob)  # the container was deleted meanwhile
            raise
        finally:
            for stale in dropped:
                await self._blobs.delete(stale)


def _safe(filename: str, param: str) -> str:
    try:
        return safe_name(filename)
    except ValueError as exc:
        raise InvalidRequest(f"{filename!r} is not a usable file name.", param=param) from exc


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _link_or_copy(source: Path, target: Path) -> int:
    """A hard link where possible (blobs are never changed in place), else a copy; the size."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:
        shutil.copyfile(source, target)
    return target.stat().st_size
