"""One node's sandbox sessions, served to every replica: the body of the Ray actor that ray_fleet
pins to each node offering the `agentbox_node` resource.

The node's own environment configures it (AGENTBOX_DATA_DIR, the sandbox settings, AGENTBOX_BLOB_URL,
AGENTBOX_SANDBOX_UID_BASE): Ray starts the actor with the environment `ray start` had. Input files
come from the object store by name, not by a replica's path. After every cell the node archives the
session's /mnt/data to the object store, so that the node taking the session over when this one dies
can put the files back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentbox.config import Settings
from agentbox.errors import NotFound, SandboxUnavailable, StoreUnavailable
from agentbox.fleet.checkpoints import Checkpoints
from agentbox.sandbox import InputFile, SessionManager, datadir
from agentbox.sandbox.checkpoint import ArchiveTooLarge
from agentbox.store.s3_blobs import S3BlobStore

log = logging.getLogger(__name__)

CHUNK = 4 << 20
"""Bytes of a file handed to a replica per call: a file never crosses whole in memory."""


@dataclass(frozen=True, slots=True)
class NodeReport:
    refusal: str | None
    isolation: list[tuple[str, bool, str]]
    statistics: dict[str, int]


@dataclass(frozen=True, slots=True)
class FileSpec:
    """An input file as a replica names it: the bytes' name in the object store, not a local path."""

    name: str
    blob: str
    file_id: str


class FleetNode:
    def __init__(self, checkpoint_bytes: int) -> None:
        settings = Settings()
        location = settings.blob_location()
        if location is None:
            raise SandboxUnavailable(
                "a fleet node needs AGENTBOX_BLOB_URL: its sessions' files live in the store"
            )
        data_dir = settings.data_dir.resolve()
        self._manager = SessionManager(settings.sandbox_config())
        self._blobs = S3BlobStore(location, data_dir / "blob-cache", settings.max_upload_mb << 20)
        self._checkpoints = Checkpoints(location)
        self._work = data_dir / "fleet-work"
        self._checkpoint_bytes = checkpoint_bytes
        self._starting = asyncio.Lock()
        self._restoring = asyncio.Lock()
        self._report: NodeReport | None = None
        self._exports: dict[str, Path] = {}
        self._archived: dict[str, tuple[datadir.Snapshot, int]] = {}
        """Key → its /mnt/data's files when last archived, and the archive's size."""

    async def ready(self) -> NodeReport:
        """What the session manager found on this host, and its sessions now (started first)."""
        started = await self._started()
        return NodeReport(started.refusal, started.isolation, self._manager.pool_statistics())

    async def ping(self) -> None:
        """Answers once the node is ready: what a replica asks before it sends a cell."""
        await self._started()

    async def _started(self) -> NodeReport:
        """Start the session manager once (every replica asks); the report of that start."""
        async with self._starting:
            if self._report is None:
                refusal = None
                try:
                    await self._manager.start()
                except SandboxUnavailable as exc:
                    refusal = str(exc)
                shutil.rmtree(self._work, ignore_errors=True)  # archives a killed node left behind
                self._work.mkdir(parents=True, exist_ok=True)
                self._report = NodeReport(refusal, self._manager.isolation_report(), {})
            return self._report

    async def execute(
        self,
        key: str,
        code: str,
        files: Sequence[FileSpec],
        timeout_s: float | None,
        restore_reason: str | None,
        memory_mb: int | None,
        idle_s: float | None,
    ) -> AsyncIterator[tuple[object, ...]]:
        """Run one cell; yields ("output", stream, text) as the cell writes, then ("done", Execution,
        checkpoint bytes or None, why not checkpointed or None).

        restore_reason: the key's session moved here from a node that died; unless this node already
        holds it, the key's files come back from its checkpoint and the cell reports that reason.
        """
        await self._refuse_unless_ready()
        if memory_mb is not None or idle_s is not None:
            await self._manager.configure(key, memory_mb=memory_mb, idle_s=idle_s)
        if restore_reason is not None:
            # Two replicas may send the key's first cells here at once: one restore, before either.
            async with self._restoring:
                if not self._manager.has_session(key):
                    await self._restore(key, restore_reason)
        inputs = [
            InputFile(spec.name, await self._blobs.local_path(spec.blob), spec.file_id, spec.blob)
            for spec in files
        ]
        output: asyncio.Queue[tuple[object, ...]] = asyncio.Queue()

        async def on_output(stream: str, text: str) -> None:
            output.put_nowait(("output", stream, text))

        cell = asyncio.create_task(
            self._manager.execute(key, code, inputs, timeout_s=timeout_s, on_output=on_output)
        )
        try:
            while not cell.done():
                next_piece = asyncio.create_task(output.get())
                await asyncio.wait({cell, next_piece}, return_when=asyncio.FIRST_COMPLETED)
                if next_piece.done():
                    yield next_piece.result()
                else:
                    next_piece.cancel()
            while not output.empty():
                yield output.get_nowait()
            execution = cell.result()
        finally:
            if not cell.done():  # the replica went away: the cell stops, as a local one would
                await self._manager.interrupt(key)
        size, note = await self.checkpoint(key)
        yield ("done", execution, size, note)

    async def checkpoint(self, key: str) -> tuple[int | None, str | None]:
        """Archive the key's /mnt/data to the object store: (its size, None), or (None, why not).
        Files unchanged since the last archive (same names, sizes, mtimes, inodes) keep it: most cells
        write no file, and an archive costs a read and an upload of all of /mnt/data."""
        archive = self._work / f"{secrets.token_hex(8)}.tar"
        try:
            files = await self._manager.data_snapshot(key)
            last = self._archived.pop(key, None)
            if last is not None and last[0] == files and len(files) < datadir.SCAN_MAX_ENTRIES:
                self._archived[key] = last
                return last[1], None
            size = await self._manager.archive(key, archive, self._checkpoint_bytes)
            await self._checkpoints.upload(key, archive)
            self._archived[key] = (files, size)
        except ArchiveTooLarge:
            cap = self._checkpoint_bytes
            note = f"/mnt/data held more than the {cap}-byte checkpoint cap (AGENTBOX_FLEET_CHECKPOINT_MB)"
        except NotFound:
            note = "the session had ended"
        except StoreUnavailable as exc:
            note = exc.message
        else:
            return size, None
        finally:
            archive.unlink(missing_ok=True)
        # An older archive must not come back as if it were this cell's files.
        with contextlib.suppress(StoreUnavailable):
            await self._checkpoints.delete(key)
        return None, note

    async def _restore(self, key: str, reason: str) -> None:
        archive = self._work / f"{secrets.token_hex(8)}.tar"
        try:
            await self._checkpoints.download(key, archive)
            await self._manager.restore(key, archive, reason)
        finally:
            archive.unlink(missing_ok=True)

    async def _refuse_unless_ready(self) -> None:
        report = await self._started()
        if report.refusal is not None:
            raise SandboxUnavailable(report.refusal)

    async def interrupt(self, key: str) -> bool:
        return await self._manager.interrupt(key)

    async def configure(self, key: str, memory_mb: int | None, idle_s: float | None) -> None:
        await self._refuse_unless_ready()
        await self._manager.configure(key, memory_mb=memory_mb, idle_s=idle_s)

    async def touch(self, key: str) -> None:
        self._manager.touch(key)

    async def close(self, key: str) -> None:
        self._archived.pop(key, None)
        await self._manager.close(key)
        with contextlib.suppress(StoreUnavailable):
            await self._checkpoints.delete(key)

    async def remove_file(self, key: str, name: str) -> bool:
        removed = await self._manager.remove_file(key, name)
        if removed:
            await self.checkpoint(key)
        return removed

    async def export(self, key: str, name: str, max_bytes: int) -> tuple[str, int]:
        """Copy /mnt/data/<name> aside for read(); (a handle, its size). Errors as copy_file_out's."""
        handle = secrets.token_hex(8)
        target = self._work / f"export-{handle}"
        size = await self._manager.copy_file_out(key, name, target, max_bytes)
        self._exports[handle] = target
        return handle, size

    async def read(self, handle: str, offset: int) -> bytes:
        path = self._exports[handle]
        return await asyncio.to_thread(_read_chunk, path, offset)

    async def release(self, handle: str) -> None:
        path = self._exports.pop(handle, None)
        if path is not None:
            path.unlink(missing_ok=True)

    async def aclose(self) -> None:
        await self._manager.aclose()


def _read_chunk(path: Path, offset: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(CHUNK)
