"""AGENTBOX_BLOB_URL: what names a bucket, and the sentence for what does not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentbox.config import Settings
from agentbox.store.blob_url import BlobUrlError, S3Location, parse_blob_url


def test_empty_is_the_local_directory() -> None:
    assert parse_blob_url("") is None
    assert Settings(blob_url="").blob_location() is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://files", S3Location("files")),
        ("s3://Files/", S3Location("Files")),
        (
            "s3://files/agentbox/prod/?endpoint=http://127.0.0.1:9000&region=eu-west-1",
            S3Location("files", "agentbox/prod/", "http://127.0.0.1:9000", "eu-west-1"),
        ),
        ("s3://files?endpoint=https://s3.example.org", S3Location("files", "", "https://s3.example.org")),
    ],
)
def test_a_bucket_with_its_prefix_endpoint_and_region(url: str, expected: S3Location) -> None:
    assert parse_blob_url(url) == expected
    assert Settings(blob_url=url).blob_location() == expected


def test_keys_carry_the_prefix() -> None:
    location = parse_blob_url("s3://files/team-a")
    assert location is not None and location.key("file-abc") == "team-a/file-abc"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("/var/blobs", "the scheme must be s3://"),
        ("http://127.0.0.1:9000/files", "the scheme must be s3://"),
        ("s3://", "it names no bucket"),
        ("s3:///prefix?endpoint=http://127.0.0.1:9000", "it names no bucket"),
        ("s3://key:secret@files", "credentials come from AWS_ACCESS_KEY_ID"),
        ("s3://files:9000", "the store's address from ?endpoint="),
        ("s3://files?endpoint=127.0.0.1:9000", "endpoint= must be an http:// or https:// URL"),
        ("s3://files?endpoint=", "give endpoint= once, with a value"),
        ("s3://files?region=a&region=b", "give region= once"),
        ("s3://files?secret=x", "unknown option secret (known: endpoint, region)"),
        ("s3://files#x", "#fragment"),
    ],
)
def test_a_bad_url_is_refused_with_a_sentence(url: str, says: str) -> None:
    with pytest.raises(BlobUrlError) as refused:
        parse_blob_url(url)
    assert says in str(refused.value)
    with pytest.raises(ValidationError) as invalid:
        Settings(blob_url=url)
    assert says in str(invalid.value)
