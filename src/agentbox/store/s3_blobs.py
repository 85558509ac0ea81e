"""File bytes in any S3-compatible bucket (AGENTBOX_BLOB_URL), with a local directory as a cache.

The bucket holds the durable copy; the cache is a local BlobStore under the data dir. A write lands
in the cache exactly as in the local store (the size cap and its 413, disk full, fsync), then goes
up to the bucket as a managed multipart upload streamed from that file; a failed upload leaves
neither copy. A read of a blob the cache lacks downloads it first (one download per blob however
many ask at once), so the sandbox, which binds or copies a path, and FileResponse get a real file.

The cache is not bounded yet: every blob this server wrote or read stays there until deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from agentbox.errors import StoreUnavailable
from agentbox.store.blob_url import S3Location
from agentbox.store.blobs import CHUNK, BlobStore, disk_full_is_clear

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

STORE_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError)
CHECK_ADVICE = "if it goes on, the operator should check the store AGENTBOX_BLOB_URL names"
NOT_WRITTEN = (
    "The server's object store did not take the file, so nothing of it was stored. "
    f"Try again later; {CHECK_ADVICE}."
)
NOT_READ = f"The server could not read the file from its object store. Try again later; {CHECK_ADVICE}."


def make_client(location: S3Location) -> S3Client:
    """An S3 client for the bucket's store, with credentials from boto3's usual chain (AWS_*)."""
    config = Config(
        # Self-hosted stores (Swift, Ceph, MinIO) answer path-style requests without wildcard DNS.
        s3={"addressing_style": "path"} if location.endpoint else None,
        # Checksums only where S3's API demands them: several S3-compatible stores refuse the
        # CRC32 trailers botocore sends by default since 1.36.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard"},
        # An endpoint that drops packets fails a request (and the start-up check) in seconds.
        connect_timeout=10,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=location.endpoint, region_name=location.region, config=config
    )


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or error.get("Code") in ("NoSuchKey", "404")


class S3BlobStore(BlobStore):
    def __init__(
        self, location: S3Location, cache: Path, max_file_bytes: int, client: S3Client | None = None
    ) -> None:
        super().__init__(cache, max_file_bytes)
        self.location = location
        self._client = client if client is not None else make_client(location)
        # boto3's defaults: parts of 8 MiB past 8 MiB, ten at a time, read from the file as sent.
        self._transfer = TransferConfig()
        self._downloads: dict[str, asyncio.Task[None]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()

    def check(self) -> None:
        """StoreUnavailable unless the bucket answers: a wrong endpoint, bucket or key shows at start."""
        try:
            self._client.head_bucket(Bucket=self.location.bucket)
        except STORE_ERRORS as exc:
            where = self.location.endpoint or "AWS S3"
            raise StoreUnavailable(
                f"The bucket {self.location.bucket!r} at {where} (AGENTBOX_BLOB_URL) did not answer: {exc}"
            ) from exc

    # --- writes: the cache as the local store writes it, then the bucket --------------------------
    async def save_stream(self, file_id: str, source: BinaryIO) -> tuple[str, int]:
        stored = await super().save_stream(file_id, source)
        await self._upload(stored[0])
        return stored

    async def save_bytes(self, file_id: str, data: bytes) -> tuple[str, int]:
        stored = await super().save_bytes(file_id, data)
        await self._upload(stored[0])
        return stored

    async def save_with(self, file_id: str, write: Callable[[Path], Awaitable[int]]) -> tuple[str, int]:
        stored = await super().save_with(file_id, write)
        await self._upload(stored[0])
        return stored

    async def _upload(self, relative: str) -> None:
        """Put the cached file in the bucket; on failure, drop it from the cache and raise."""
        upload = asyncio.create_task(asyncio.to_thread(self._put, relative))
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            # The upload's thread goes on; when it ends, remove what it stored: no record will name it.
            cleanup = asyncio.create_task(self._discard_after(upload, relative))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
            raise
        except BaseException:
            await asyncio.to_thread((self.root / relative).unlink, True)
            raise

    def _put(self, relative: str) -> None:
        key = self.location.key(relative)
        try:
            self._client.upload_file(
                str(self.root / relative), self.location.bucket, key, Config=self._transfer
            )
        except STORE_ERRORS as exc:
            log.warning("upload of %s to bucket %s failed: %s", key, self.location.bucket, exc)
            raise StoreUnavailable(NOT_WRITTEN) from exc

    async def _discard_after(self, upload: asyncio.Task[None], relative: str) -> None:
        with contextlib.suppress(Exception):
            await upload
        await self.delete(relative)

    # --- reads: from the cache, filled from the bucket --------------------------------------------
    async def local_path(self, relative: str) -> Path:
        """The cached file, downloaded first when the cache lacks it; absent when the bucket has no
        such object either. StoreUnavailable when the bucket cannot be read."""
        path = self.root / relative
        if path.exists():
            return path
        download = self._downloads.get(relative)
        if download is None:
            download = asyncio.create_task(asyncio.to_thread(self._fetch, relative))
            self._downloads[relative] = download
            download.add_done_callback(lambda _: self._downloads.pop(relative, None))
        # Shielded: a caller that gives up does not end the download the others wait for.
        await asyncio.shield(download)
        return path

    def _fetch(self, relative: str) -> None:
        """The object into the cache: streamed to `.partial`, fsynced, renamed into place."""
        target = self.root / relative
        if target.exists():
            return
        key = self.location.key(relative)
        partial = target.with_suffix(".partial")
        try:
            response = self._client.get_object(Bucket=self.location.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return  # gone: the path stays absent, and the caller says so
            raise self._unreadable(key, exc) from exc
        except BotoCoreError as exc:
            raise self._unreadable(key, exc) from exc
        body = response["Body"]
        try:
            with disk_full_is_clear():
                with open(partial, "wb") as out:
                    for chunk in body.iter_chunks(CHUNK):
                        out.write(chunk)
                self._commit(partial, target)
        except STORE_ERRORS as exc:  # the connection broke mid-body
            partial.unlink(missing_ok=True)
            raise self._unreadable(key, exc) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            body.close()

    def _unreadable(self, key: str, exc: Exception) -> StoreUnavailable:
        log.warning("download of %s from bucket %s failed: %s", key, self.location.bucket, exc)
        return StoreUnavailable(NOT_READ)

    async def delete(self, relative: str) -> None:
        key = self.location.key(relative)
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self.location.bucket, Key=key)
        except STORE_ERRORS as exc:
            # The record is gone already (or never was): the object is left behind rather than a
            # delete the user asked for reported as failed.
            log.warning("%s left in bucket %s: its delete failed: %s", key, self.location.bucket, exc)
        await super().delete(relative)
