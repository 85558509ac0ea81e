"""File bytes on disk under the data dir, addressed by file id."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from agentbox.errors import InvalidRequest

_CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path, max_file_bytes: int) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, relative: str) -> Path:
        return self.root / relative

    async def save_stream(self, file_id: str, source: BinaryIO) -> tuple[str, int]:
        """Copy an upload to disk in chunks; returns (relative path, size). Too large → InvalidRequest."""
        return await asyncio.to_thread(self._save_stream, file_id, source)

    def _save_stream(self, file_id: str, source: BinaryIO) -> tuple[str, int]:
        target = self.root / file_id
        partial = target.with_suffix(".partial")
        size = 0
        with open(partial, "wb") as out:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > self.max_file_bytes:
                    out.close()
                    partial.unlink(missing_ok=True)
                    raise InvalidRequest(
                        f"File is larger than the limit of {self.max_file_bytes} bytes.", param="file"
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        return file_id, size

    async def save_bytes(self, file_id: str, data: bytes) -> tuple[str, int]:
        def write() -> tuple[str, int]:
            target = self.root / file_id
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            os.replace(partial, target)
            return file_id, len(data)

        return await asyncio.to_thread(write)

    async def save_with(self, file_id: str, write: Callable[[Path], Awaitable[int]]) -> tuple[str, int]:
        """Let `write` fill a new file (it returns the size), then put it in place; (relative path, size)."""
        target = self.root / file_id
        partial = target.with_suffix(".partial")
        try:
            size = await write(partial)
            await asyncio.to_thread(os.replace, partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return file_id, size

    async def delete(self, relative: str) -> None:
        await asyncio.to_thread((self.root / relative).unlink, True)
