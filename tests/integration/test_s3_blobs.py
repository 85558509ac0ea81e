"""A live server with AGENTBOX_BLOB_URL on a real S3 server (Swift with s3api): files go to the
bucket, and come back from it when the server's local cache does not have them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.live_server import LiveServer
from tests.sandbox_fixtures import requires_sandbox
from tests.swift_server import SwiftServer

MiB = 1 << 20
PREFIX = "agentbox"


@pytest.fixture(scope="module")
def bucket(swift: SwiftServer) -> str:
    return swift.new_bucket()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, swift: SwiftServer, bucket: str) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("agentbox-s3") / "data",
        API_KEY,
        AGENTBOX_MAX_UPLOAD_MB="16",
        **swift.blob_env(bucket, PREFIX),
    ).start()
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with server.sdk() as sdk:
        yield sdk


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with server.http(timeout_s=120) as http:
        yield http


def cache(server: LiveServer) -> Path:
    return server.data_dir / "blob-cache"


def empty_cache(server: LiveServer) -> None:
    """What a new replica, or a cache that dropped the files, starts from."""
    for path in cache(server).iterdir():
        path.unlink()


def test_an_upload_is_in_the_bucket_and_comes_back_from_it(
    client: openai.OpenAI, server: LiveServer, swift: SwiftServer, bucket: str
) -> None:
    data = os.urandom(10 * MiB + 3)  # a multipart upload of two parts
    uploaded = client.files.create(file=("numbers.bin", data), purpose="assistants")
    key = f"{PREFIX}/{uploaded.id}"
    assert swift.objects(bucket)[key] == len(data)
    assert client.files.content(uploaded.id).read() == data

    empty_cache(server)
    assert client.files.content(uploaded.id).read() == data  # read back from the bucket
    assert (cache(server) / uploaded.id).read_bytes() == data  # and cached again

    assert client.files.delete(uploaded.id).deleted
    assert key not in swift.objects(bucket)
    assert not (cache(server) / uploaded.id).exists()


def test_an_upload_past_the_cap_is_413_and_nothing_reaches_the_bucket(
    client: openai.OpenAI, server: LiveServer, swift: SwiftServer, bucket: str
) -> None:
    before = swift.objects(bucket)
    # Within the form's allowance, so it is counted as it streams (16 MiB stored, then refused).
    # Not one byte past: the cap passed in the body's last chunk waits out api/uploads.py's 30 s drain.
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.bin", b"x" * (16 * MiB + MiB // 2)), purpose="assistants")
    assert refused.value.status_code == 413
    assert "16 MB" in refused.value.message
    assert swift.objects(bucket) == before
    assert not [p for p in cache(server).iterdir() if p.suffix == ".partial"]


def test_a_file_gone_from_the_bucket_is_the_usual_404(
    client: openai.OpenAI, server: LiveServer, swift: SwiftServer, bucket: str
) -> None:
    uploaded = client.files.create(file=("gone.txt", b"soon gone"), purpose="assistants")
    swift.s3().delete_object(Bucket=bucket, Key=f"{PREFIX}/{uploaded.id}")
    empty_cache(server)
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.content(uploaded.id)
    assert f"The content of file '{uploaded.id}' is no longer on the server." in missing.value.message


@requires_sandbox
def test_code_reads_a_file_from_a_cold_cache_and_what_it_writes_goes_to_the_bucket(
    client: openai.OpenAI, api: httpx.Client, server: LiveServer, swift: SwiftServer, bucket: str
) -> None:
    data = b"quarter,revenue\n" + b"".join(b"Q%d,%d\n" % (i % 4 + 1, i) for i in range(20_000))
    uploaded = client.files.create(file=("sales.csv", data), purpose="assistants")
    created = api.post("/containers", json={"name": "s3", "file_ids": [uploaded.id]})
    assert created.status_code == 200, created.text
    container = created.json()["id"]
    before = swift.objects(bucket)
    [copy] = [key.removeprefix(f"{PREFIX}/") for key in before if key.startswith(f"{PREFIX}/cblob_")]
    empty_cache(server)  # the container's copy of the file must come from the bucket

    code = (
        "import hashlib\n"
        "data = open('/mnt/data/sales.csv', 'rb').read()\n"
        "print(hashlib.sha256(data).hexdigest())\n"
        "open('/mnt/data/upper.csv', 'wb').write(data.upper())\n"
        "None"
    )
    ran = api.post(f"/containers/{container}/exec", json={"code": code})
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert body["status"] == "ok", body
    assert body["stdout"] == hashlib.sha256(data).hexdigest() + "\n"
    assert (cache(server) / copy).read_bytes() == data  # fetched from the bucket for the sandbox
    [written] = body["files"]
    assert written["path"] == "/mnt/data/upper.csv"

    [new_key] = set(swift.objects(bucket)) - set(before)
    stored = swift.s3().get_object(Bucket=bucket, Key=new_key)["Body"].read()
    assert stored == data.upper()
    empty_cache(server)
    content = api.get(f"/containers/{container}/files/{written['id']}/content")
    assert content.status_code == 200 and content.content == data.upper()
    assert api.delete(f"/containers/{container}").status_code == 200
    assert new_key not in swift.objects(bucket)


def test_the_server_refuses_to_start_on_a_bucket_that_does_not_exist(
    tmp_path: Path, swift: SwiftServer
) -> None:
    live = LiveServer(tmp_path / "data", API_KEY, **swift.blob_env("no-such-bucket"))
    with pytest.raises(RuntimeError) as refused:
        live.start(timeout_s=60)
    assert "agentbox: The bucket 'no-such-bucket' at http://127.0.0.1:" in str(refused.value)


def test_the_server_refuses_to_start_on_a_bad_blob_url(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", API_KEY, AGENTBOX_BLOB_URL="s3:///files")
    with pytest.raises(RuntimeError) as refused:
        live.start(timeout_s=60)
    assert "AGENTBOX_BLOB_URL='s3:///files' is not valid" in str(refused.value)
    assert "it names no bucket" in str(refused.value)
