"""AGENTBOX_BLOB_URL: where the file bytes live. Empty: a directory under the data dir; otherwise a
bucket in any S3-compatible store, `s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]`.

Kept free of boto3, so reading the settings does not import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

FORMAT = "s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT][&region=REGION]"
OPTIONS = ("endpoint", "region")


class BlobUrlError(ValueError):
    """A blob URL that names no usable bucket; the message is one sentence for the operator."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""
    """Prepended to every object key: empty, or ending in "/"."""
    endpoint: str | None = None
    """The store's URL; None: AWS S3 itself."""
    region: str | None = None

    def key(self, relative: str) -> str:
        return self.prefix + relative


def parse_blob_url(url: str) -> S3Location | None:
    """The bucket `url` names; None for the empty URL (the local directory). BlobUrlError if bad."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlobUrlError(f"it is not a URL ({exc}); the form is {FORMAT}") from exc
    if parts.scheme != "s3":
        raise BlobUrlError(f"the scheme must be s3:// (the form is {FORMAT})")
    if parts.username is not None or parts.password is not None or port is not None:
        raise BlobUrlError(
            "the part after s3:// is the bucket alone: credentials come from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, the store's address from ?endpoint="
        )
    bucket = parts.netloc  # not .hostname, which would lower-case it
    if not bucket:
        raise BlobUrlError(f"it names no bucket (the form is {FORMAT})")
    if parts.fragment:
        raise BlobUrlError(f"it has a #fragment, which means nothing here (the form is {FORMAT})")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise BlobUrlError(f"unknown option {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    options: dict[str, str] = {}
    for name, values in query.items():
        if len(values) != 1 or not values[0]:
            raise BlobUrlError(f"give {name}= once, with a value")
        options[name] = values[0]
    endpoint = options.get("endpoint")
    if endpoint is not None:
        target = urlsplit(endpoint)
        if target.scheme not in ("http", "https") or not target.hostname:
            raise BlobUrlError(f"endpoint= must be an http:// or https:// URL, not {endpoint!r}")
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=options.get("region"),
    )
