"""The last archive of each session's /mnt/data, one object per key in the object store.

A node overwrites the key's object after every cell (an S3 PUT replaces it whole, so a reader never
sees half of one), and the node that takes the session over after its node died restores from it.
"""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
from pathlib import Path

from botocore.exceptions import ClientError

from agentbox.errors import StoreUnavailable
from agentbox.store.blob_url import S3Location
from agentbox.store.s3_blobs import STORE_ERRORS, make_client

PREFIX = "fleet-checkpoints/"


class Checkpoints:
    def __init__(self, location: S3Location) -> None:
        self._location = location
        self._client = make_client(location)

    def object_key(self, key: str) -> str:
        # Session keys are ids the API made, but hashing keeps any key a safe, fixed-size object name.
        return self._location.key(PREFIX + hashlib.sha256(key.encode()).hexdigest() + ".tar")

    async def upload(self, key: str, archive: Path) -> None:
        await self._call(self._client.upload_file, str(archive), self._location.bucket, self.object_key(key))

    async def download(self, key: str, target: Path) -> bool:
        """Write the key's archive to `target`; False (and an empty archive there) when it has none."""
        try:
            await self._call(
                self._client.download_file, self._location.bucket, self.object_key(key), str(target)
            )
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, ClientError) or not _missing(exc.__cause__):
                raise
            await asyncio.to_thread(_write_empty_archive, target)
            return False
        return True

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self._location.bucket, Key=self.object_key(key))

    async def _call(self, method: object, *args: object, **kwargs: object) -> None:
        try:
            await asyncio.to_thread(method, *args, **kwargs)  # type: ignore[arg-type]
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"the object store refused a session checkpoint: {exc}") from exc


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def _write_empty_archive(target: Path) -> None:
    with tarfile.open(target, "w"):
        pass
