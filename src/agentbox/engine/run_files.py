"""The files of an Assistants run: those placed in the sandbox's /mnt/data, and those its code hands
the user (stored as `assistants_output` files)."""

from __future__ import annotations

from pathlib import Path

from agentbox.engine import outputs
from agentbox.engine.loop import AgentLoop, RunFailed
from agentbox.errors import NotFound, StorageFull, StoreUnavailable
from agentbox.ids import new_id, now
from agentbox.sandbox import InputFile, safe_name
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import FileRecord

OUTPUT_PURPOSE = "assistants_output"


class OutputFiles:
    """Files the sandbox hands the user, stored as `assistants_output` files."""

    def __init__(self, store: Store, blobs: BlobStore, loop: AgentLoop) -> None:
        self._store = store
        self._blobs = blobs
        self._sandbox = loop.sandbox

    async def image(self, filename: str, data: bytes) -> str:
        file_id = new_id("file-")
        try:
            path, size = await self._blobs.save_bytes(file_id, data)
        except (StorageFull, StoreUnavailable) as exc:
            raise RunFailed(exc.message, code="server_error") from exc
        return await self._record(file_id, filename, path, size)

    async def session_file(self, session_key: str, name: str) -> str:
        """The session's /mnt/data/<name> as an output file, copied in the kernel; NotFound if absent.
        A full disk fails the run with a message naming the file (RunFailed)."""
        file_id = new_id("file-")

        async def copy(target: Path) -> int:
            return await self._sandbox.copy_file_out(session_key, name, target)

        try:
            path, size = await self._blobs.save_with(file_id, copy)
        except StorageFull as exc:
            raise RunFailed(outputs.not_stored(name), code="server_error") from exc
        except StoreUnavailable as exc:
            raise RunFailed(exc.message, code="server_error") from exc
        return await self._record(file_id, name, path, size)

    async def _record(self, file_id: str, filename: str, path: str, size: int) -> str:
        record = FileRecord(
            id=file_id, created_at=now(), filename=filename, size=size, purpose=OUTPUT_PURPOSE, path=path
        )
        try:
            await self._store.add(record)
        except BaseException:
            await self._blobs.delete(path)  # no blob without its record
            raise
        return file_id


async def input_files(store: Store, blobs: BlobStore, file_ids: list[str]) -> list[InputFile]:
    """Uploaded files as /mnt/data entries, each under a unique safe name; deleted ones are skipped."""
    placed: list[InputFile] = []
    taken: set[str] = set()
    for file_id in dict.fromkeys(file_ids):
        try:
            record = await store.get(FileRecord, file_id)
        except NotFound:
            continue  # deleted since it was attached; the run goes on without it
        name = unique_name(safe_name(record.filename), taken)
        taken.add(name)
        try:
            source = await blobs.local_path(record.path)
        except StoreUnavailable as exc:
            raise RunFailed(exc.message, code="server_error") from exc
        placed.append(InputFile(name=name, source=source, file_id=record.id, blob=record.path))
    return placed


def unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix, dot = name, "", ""
    n = 2
    while f"{stem} ({n}){dot}{suffix}" in taken:
        n += 1
    return f"{stem} ({n}){dot}{suffix}"
