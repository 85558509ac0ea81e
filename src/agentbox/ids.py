"""Object ids in the OpenAI style (`file-…`, `asst_…`, …) and the clock they are stamped with."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def new_id(prefix: str) -> str:
    """A fresh id such as `asst_3Fq…` (24 random base62 characters, ~142 bits)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def now() -> int:
    """Integer Unix seconds, the only timestamp format on the wire."""
    return int(time.time())
