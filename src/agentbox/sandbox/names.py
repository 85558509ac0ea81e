"""File and session names that are safe to use as one path component on the host."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe_name(filename: str) -> str:
    """A file name for /mnt/data: basename, NFC, no control characters, at most 200 UTF-8 bytes.

    Raises ValueError when nothing usable is left (empty, '.', '..').
    """
    name = unicodedata.normalize("NFC", filename).replace("\\", "/")
    name = name.rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name).strip()
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        keep_ext = dot and 0 < len(ext.encode()) <= 16
        suffix = ("." + ext) if keep_ext else ""
        budget = MAX_NAME_BYTES - len(suffix.encode())
        head = (stem if keep_ext else name).encode("utf-8")[:budget].decode("utf-8", "ignore")
        name = head + suffix
    if name in ("", ".", ".."):
        raise ValueError(f"{filename!r} is not a usable file name")
    return name


def relative_parts(name: str) -> list[str]:
    """Split a /mnt/data-relative name into components; ValueError for '..', absolute or empty."""
    if not name or name.startswith("/") or "\x00" in name:
        raise ValueError(f"{name!r} is not a relative file name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{name!r} is not a relative file name")
    return parts
