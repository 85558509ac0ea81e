"""Frames: the one wire format between the server and the executor inside the sandbox.

Stdlib only: this file is bind-mounted into the sandbox and imported by the executor too.

    frame   = length payload
    length  = 4 bytes, big-endian unsigned, the byte length of payload (1 .. MAX_FRAME)
    payload = a JSON object, ASCII only (every non-ASCII character \\u-escaped), with
              "op" (str) and, except in hello, "id" (int): the request it belongs to

    executor → server   hello {version, pid}   output {id, stream: stdout|stderr, text}
                        image {id, png: base64}   end {id, status, output_bytes, error, ...}
                        pong {id}
    server → executor   exec {id, code}   interrupt {id}   ping {id}

An execution sends output frames while its code writes, then its images, then exactly one end
frame; a stream that stops before the end frame means the executor is gone, which the server
reports as its own outcome.
"""

from __future__ import annotations

import json
import struct
from typing import Any

PROTOCOL_VERSION = 2
MAX_FRAME = 32 << 20
"""Large enough for one base64 PNG plus capped logs; anything bigger is a broken peer."""

_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """The byte stream is not a valid sequence of frames; the peer must be dropped."""


def encode(obj: dict[str, Any]) -> bytes:
    """One frame for obj; raises FrameError if it is not a JSON object or exceeds MAX_FRAME."""
    if not isinstance(obj, dict):
        raise FrameError("a frame carries a JSON object")
    try:
        payload = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise FrameError(f"cannot encode frame: {exc}") from exc
    if len(payload) > MAX_FRAME:
        raise FrameError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _HEADER.pack(len(payload)) + payload


class Decoder:
    """Incremental decoder: feed() bytes as they arrive, then take whole frames with next_frame().

    Holding partial input here (not in the caller) makes a cancelled read lose nothing.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> dict[str, Any] | None:
        """The next complete frame, or None until more bytes arrive; raises FrameError."""
        if len(self._buf) < _HEADER.size:
            return None
        (length,) = _HEADER.unpack_from(self._buf)
        if length == 0 or length > self._max:
            raise FrameError(f"frame length {length} is outside 1..{self._max}")
        end = _HEADER.size + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[_HEADER.size : end])
        del self._buf[:end]
        try:
            obj = json.loads(payload.decode("ascii"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise FrameError(f"frame is not ASCII JSON: {exc}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("op"), str):
            raise FrameError("frame is not a JSON object with a string 'op'")
        return obj

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
