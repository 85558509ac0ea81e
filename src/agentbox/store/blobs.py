"""File bytes on disk under the data dir, addressed by file id.

Every write goes to `<id>.partial`, is fsynced, renamed into place and the directory fsynced: a
crash or a full disk never leaves a stored name with half its bytes, and a failed write leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from agentbox.errors import PayloadTooLarge, StorageFull

CHUNK = 1 << 20
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def too_large(max_bytes: int) -> PayloadTooLarge:
    """The 413 of a file past the cap, naming the cap as OpenAI names its own (in MB)."""
    return PayloadTooLarge(
        f"File is too large: the maximum size of a file is {max_bytes / (1 << 20):g} MB "
        "(AGENTBOX_MAX_UPLOAD_MB). Nothing of it was stored.",
        param="file",
        code="file_too_large",
    )


def storage_full(subject: str = "the file") -> StorageFull:
    return StorageFull(
        f"The server's disk is full: {subject} could not be stored and nothing of it was kept. "
        "Delete files you no longer need (DELETE /v1/files/{file_id}) or ask the operator to free "
        "space in the data dir, then try again.",
        code="insufficient_storage",
    )


@contextlib.contextmanager
def disk_full_is_clear() -> Iterator[None]:
    """ENOSPC/EDQUOT as StorageFull: the client gets a sentence instead of a 500."""
    try:
        yield
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise storage_full() from exc
        raise


class BlobStore:
    def __init__(self, root: Path, max_file_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        root.mkdir(parents=True, exist_ok=True)
        # A server killed mid-write leaves a `.partial` that no record names: none is kept.
        for leftover in root.glob("*.partial"):
            leftover.unlink(missing_ok=True)

    def check(self) -> None:
        """Nothing to check here (the directory was made above); an object store checks its bucket."""

    async def local_path(self, relative: str) -> Path:
        """Where the blob's bytes are on this host, to read, bind or copy; the path does not exist
        when the bytes are gone (callers say so in their own words)."""
        return self.root / relative

    async def save_stream(self, file_id: str, source: BinaryIO) -> tuple[str, int]:
        """Copy an upload to disk in chunks; returns (relative path, size). Past max_file_bytes →
        PayloadTooLarge; disk full → StorageFull; either way nothing is left on disk."""
        return await asyncio.to_thread(self._write, file_id, source, self.max_file_bytes)

    async def save_bytes(self, file_id: str, data: bytes) -> tuple[str, int]:
        """Bytes the server produced (a figure): stored like an upload, without the upload cap."""
        view = memoryview(data)
        chunks = (view[i : i + CHUNK] for i in range(0, len(view), CHUNK))
        return await asyncio.to_thread(self._write_chunks, file_id, chunks, None)

    async def save_with(self, file_id: str, write: Callable[[Path], Awaitable[int]]) -> tuple[str, int]:
        """Let `write` fill a new file (it returns the size), then put it in place; (relative path, size)."""
        target = self.root / file_id
        partial = target.with_suffix(".partial")
        try:
            with disk_full_is_clear():
                size = await write(partial)
                await asyncio.to_thread(self._commit, partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return file_id, size

    async def delete(self, relative: str) -> None:
        await asyncio.to_thread((self.root / relative).unlink, True)

    def _write(self, file_id: str, source: BinaryIO, limit: int | None) -> tuple[str, int]:
        return self._write_chunks(file_id, iter(lambda: source.read(CHUNK), b""), limit)

    def _write_chunks(
        self, file_id: str, chunks: Iterator[bytes | memoryview], limit: int | None
    ) -> tuple[str, int]:
        target = self.root / file_id
        partial = target.with_suffix(".partial")
        size = 0
        try:
            with disk_full_is_clear():
                with open(partial, "xb") as out:
                    for chunk in chunks:
                        size += len(chunk)
                        if limit is not None and size > limit:
                            raise too_large(limit)
                        out.write(chunk)
                self._commit(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return file_id, size

    def _commit(self, partial: Path, target: Path) -> None:
        """The bytes on disk, then the name: fsync the file, rename it, fsync the directory."""
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, target)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
