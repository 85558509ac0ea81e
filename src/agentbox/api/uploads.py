"""Multipart upload bodies read with the per-file cap enforced as the bytes arrive.

FastAPI's File() parameters spool the whole body to a temporary file before the route runs, so a
10 GB upload would fill the disk before anything could refuse it. Here every file part is counted
while it streams: past the cap the read stops with a 413 (PayloadTooLarge), whatever
Content-Length said or whether the body was chunked, and the spooled part is closed, which
deletes it (it never had a name on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from agentbox.errors import InvalidRequest, PayloadTooLarge
from agentbox.store.blobs import too_large

# Room for the multipart framing and the small fields beside the file (purpose, file_id): a body
# larger than the cap by more than this cannot hold an acceptable file.
FORM_ALLOWANCE = 1 << 20
# After a refusal the rest of the body is read and dropped (never stored) so the client, still
# sending, reads the 413 instead of a reset connection — for a bounded while, as nginx's lingering
# close does.
_DRAIN_S = 30.0

UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "A file past the server's upload cap (AGENTBOX_MAX_UPLOAD_MB)"},
    507: {"description": "The server's disk is full; nothing was stored"},
}


class _CappedParser(MultiPartParser):
    """Starlette's multipart parser, refusing a file part once it passes max_file_bytes."""

    def __init__(self, request: Request, max_file_bytes: int) -> None:
        super().__init__(request.headers, request.stream())
        self._max_file_bytes = max_file_bytes
        self._part_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._part_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            self._part_bytes += end - start
            if self._part_bytes > self._max_file_bytes:
                raise too_large(self._max_file_bytes)
        super().on_part_data(data, start, end)


@contextlib.asynccontextmanager
async def upload_form(request: Request, max_file_bytes: int) -> AsyncIterator[FormData]:
    """The request's form, each file part at most max_file_bytes (PayloadTooLarge past it); its
    spooled files are closed on exit. A urlencoded body (no files) is read as usual."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        async with request.form() as plain:
            yield plain
        return
    try:
        declared = int(request.headers.get("content-length", ""))
    except ValueError:
        declared = None  # chunked: counted as it streams
    if declared is not None and declared > max_file_bytes + FORM_ALLOWANCE:
        # A client waiting on "Expect: 100-continue" (curl does for large files) sends nothing
        # unless we read: it gets the 413 at once. Any other is already sending.
        if request.headers.get("expect", "").lower() != "100-continue":
            await _drain(request)
        raise too_large(max_file_bytes)
    try:
        form = await _CappedParser(request, max_file_bytes).parse()
    except PayloadTooLarge:
        await _drain(request)
        raise
    except MultiPartException as exc:
        # As Starlette's own form reading answers it, so every form route words it the same.
        raise HTTPException(400, detail=exc.message) from exc
    except ClientDisconnect:
        raise InvalidRequest("The client closed the connection before the upload ended.") from None
    try:
        yield form
    finally:
        await form.close()


async def _drain(request: Request) -> None:
    """Read and drop what is left of the body, for at most _DRAIN_S."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_S):
            while True:
                message = await request.receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
