"""Images the user sent, as a vision model reads them: uploaded files become data: URLs.

Only the newest user message's images are sent (engine/prompt.py, responses/items.py); a model not
configured for vision fails the run with a message naming the setting (engine/loop.py).
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from collections.abc import Iterable
from typing import Any

from agentbox.engine.surface import RunFailed
from agentbox.errors import NotFound
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import FileRecord

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""OpenAI's limit for one image in a chat request; larger ones fail the run before the model is asked."""

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_mime(data: bytes, filename: str) -> str | None:
    """The image type of an upload, from its first bytes (else its name); None when it is no image."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed if guessed and guessed.startswith("image/") else None


async def data_urls(store: Store, blobs: BlobStore, file_ids: Iterable[str]) -> dict[str, str]:
    """Each uploaded image as a data: URL; a deleted file is left out (the prompt names it instead).

    RunFailed when a file is too large or is no image.
    """
    urls: dict[str, str] = {}
    for file_id in dict.fromkeys(file_ids):
        try:
            record = await store.get(FileRecord, file_id)
        except NotFound:
            continue
        if record.size > MAX_IMAGE_BYTES:
            raise RunFailed(
                f"The image {file_id} ({record.filename}) is {record.size:,} bytes; a model takes "
                f"images of at most {MAX_IMAGE_BYTES:,} bytes.",
                code="invalid_prompt",
            )
        data = await asyncio.to_thread((await blobs.local_path(record.path)).read_bytes)
        mime = image_mime(data, record.filename)
        if mime is None:
            raise RunFailed(
                f"The file {file_id} ({record.filename}) was sent as an image but is not a PNG, JPEG, "
                "GIF or WebP image.",
                code="invalid_prompt",
            )
        urls[file_id] = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return urls


def image_part(url: str, detail: str | None) -> dict[str, Any]:
    """A chat-completions image_url content part."""
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def url_name(url: str | None) -> str:
    """How the prompt names an image URL it does not send: never a data: URL's whole payload."""
    if not url:
        return "(no url)"
    return url.split(",", 1)[0] + ",…" if url.startswith("data:") else url


def count_images(chat: Iterable[dict[str, Any]]) -> int:
    """Image parts in a conversation (only user messages carry them)."""
    return sum(
        1
        for message in chat
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    )
