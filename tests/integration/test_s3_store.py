"""The S3 blob store against a real S3 server (Swift with s3api): the bucket holds the bytes, the
local directory is a cache that any store pointed at the bucket fills again."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest

from agentbox.devtools import free_port
from agentbox.devtools.swift import ACCESS_KEY, SECRET_KEY
from agentbox.errors import PayloadTooLarge, StoreUnavailable
from agentbox.store.blob_url import S3Location, parse_blob_url
from agentbox.store.s3_blobs import S3BlobStore
from tests.swift_server import SwiftServer

MiB = 1 << 20


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store reads them where any boto3 program does."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


def location(swift: SwiftServer, bucket: str, prefix: str = "") -> S3Location:
    found = parse_blob_url(swift.blob_env(bucket, prefix)["AGENTBOX_BLOB_URL"])
    assert found is not None
    return found


def test_a_fresh_store_reads_what_another_wrote(swift: SwiftServer, tmp_path: Path) -> None:
    bucket = swift.new_bucket()
    data = os.urandom(20 * MiB + 5)  # past boto3's 8 MiB threshold: a multipart upload

    async def go() -> None:
        writer = S3BlobStore(location(swift, bucket, "team"), tmp_path / "a", 64 * MiB)
        relative, size = await writer.save_stream("file-big", io.BytesIO(data))
        assert (relative, size) == ("file-big", len(data))
        assert (tmp_path / "a" / "file-big").read_bytes() == data  # the writer's cache keeps it

        # Another server's store (a new data dir): its cache is empty, the bucket has the bytes.
        reader = S3BlobStore(location(swift, bucket, "team"), tmp_path / "b", 64 * MiB)
        assert not (tmp_path / "b" / "file-big").exists()
        paths = await asyncio.gather(*(reader.local_path(relative) for _ in range(8)))
        assert set(paths) == {tmp_path / "b" / "file-big"}
        assert paths[0].read_bytes() == data
        assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["file-big"]  # no .partial

    asyncio.run(go())
    assert swift.objects(bucket) == {"team/file-big": len(data)}
    head = swift.s3().head_object(Bucket=bucket, Key="team/file-big")
    assert head["ETag"].strip('"').endswith("-3")  # uploaded in three parts


def test_callers_of_one_missing_blob_share_one_download(swift: SwiftServer, tmp_path: Path) -> None:
    bucket = swift.new_bucket()
    swift.s3().put_object(Bucket=bucket, Key="file-shared", Body=b"shared bytes")

    async def go() -> None:
        store = S3BlobStore(location(swift, bucket), tmp_path, MiB)
        callers = [asyncio.create_task(store.local_path("file-shared")) for _ in range(5)]
        await asyncio.sleep(0)  # each caller has asked; the download is under way
        assert list(store._downloads) == ["file-shared"]
        paths = await asyncio.gather(*callers)
        assert {p.read_bytes() for p in paths} == {b"shared bytes"}
        assert store._downloads == {}

    asyncio.run(go())


def test_a_missing_object_is_a_path_that_does_not_exist(swift: SwiftServer, tmp_path: Path) -> None:
    bucket = swift.new_bucket()

    async def go() -> None:
        store = S3BlobStore(location(swift, bucket), tmp_path, MiB)
        path = await store.local_path("file-never")
        assert path == tmp_path / "file-never" and not path.exists()
        assert list(tmp_path.iterdir()) == []

    asyncio.run(go())


def test_delete_removes_the_object_and_the_cached_file(swift: SwiftServer, tmp_path: Path) -> None:
    bucket = swift.new_bucket()

    async def go() -> None:
        store = S3BlobStore(location(swift, bucket), tmp_path, MiB)
        await store.save_bytes("file-a", b"a")
        await store.save_with("file-b", write_b)
        assert swift.objects(bucket) == {"file-a": 1, "file-b": 3}
        await store.delete("file-a")
        await store.delete("file-gone")  # deleting what is not there is no error, as locally
        assert swift.objects(bucket) == {"file-b": 3}
        assert [p.name for p in tmp_path.iterdir()] == ["file-b"]

    async def write_b(target: Path) -> int:
        return target.write_bytes(b"bbb")

    asyncio.run(go())


def test_past_the_cap_nothing_is_uploaded(swift: SwiftServer, tmp_path: Path) -> None:
    bucket = swift.new_bucket()

    async def go() -> None:
        store = S3BlobStore(location(swift, bucket), tmp_path, MiB)
        with pytest.raises(PayloadTooLarge):
            await store.save_stream("file-big", io.BytesIO(b"x" * (MiB + 1)))

    asyncio.run(go())
    assert swift.objects(bucket) == {}
    assert list(tmp_path.iterdir()) == []


def test_a_store_that_does_not_answer_keeps_nothing_and_says_so(tmp_path: Path) -> None:
    down = S3Location("files", endpoint=f"http://127.0.0.1:{free_port()}")

    async def go() -> None:
        store = S3BlobStore(down, tmp_path, MiB)
        with pytest.raises(StoreUnavailable) as refused:
            await store.save_bytes("file-a", b"a")
        assert "did not take the file, so nothing of it was stored" in refused.value.message
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(StoreUnavailable) as unread:
            await store.local_path("file-a")
        assert "could not read the file" in unread.value.message
        with pytest.raises(StoreUnavailable) as unchecked:
            store.check()
        assert "'files'" in unchecked.value.message and "did not answer" in unchecked.value.message

    asyncio.run(go())


def test_check_refuses_a_bucket_that_does_not_exist(swift: SwiftServer, tmp_path: Path) -> None:
    S3BlobStore(location(swift, swift.new_bucket()), tmp_path / "a", MiB).check()
    with pytest.raises(StoreUnavailable, match="'no-such-bucket'"):
        S3BlobStore(location(swift, "no-such-bucket"), tmp_path / "b", MiB).check()
