"""/files: upload, list, retrieve, delete and download."""

from __future__ import annotations

import mimetypes
import os
import unicodedata
import urllib.parse
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from agentbox.api import wire
from agentbox.api.deps import BlobsDep, StoreDep
from agentbox.api.errors import ERROR_RESPONSES
from agentbox.api.listing import ListDep
from agentbox.api.uploads import UPLOAD_RESPONSES, upload_form
from agentbox.api.vector_stores import VectorStoresDep
from agentbox.errors import InvalidRequest, NotFound
from agentbox.ids import new_id, now
from agentbox.store.records import FileRecord

router = APIRouter(tags=["files"], responses=ERROR_RESPONSES)

UploadPurpose = Literal["assistants", "vision", "user_data", "batch", "fine-tune", "evals"]
_PURPOSE = TypeAdapter(UploadPurpose)

# The body is read by api/uploads.py (the cap applies while it streams), so it is described here.
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(get_args(UploadPurpose))},
                    },
                }
            }
        },
    }
}


# Bidirectional overrides make "invoice\u202egpj.exe" display as "invoiceexe.jpg": refused like controls.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_filename(raw: str | None) -> str:
    """The stored name: the last path component, NFC, no control characters."""
    if not raw:
        raise InvalidRequest("The uploaded file has no filename.", param="file")
    if "\x00" in raw:
        raise InvalidRequest("The filename must not contain NUL characters.", param="file")
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    if any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in name):
        raise InvalidRequest("The filename must not contain control characters.", param="file")
    if name in ("", ".", ".."):
        raise InvalidRequest(f"'{raw}' is not a usable filename.", param="file")
    if len(name.encode()) > 255:
        raise InvalidRequest("The filename is longer than 255 bytes.", param="file")
    return name


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name, so no header injection is possible."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"


@router.post("/files", openapi_extra=_UPLOAD_BODY, responses=UPLOAD_RESPONSES)
async def upload_file(store: StoreDep, blobs: BlobsDep, request: Request) -> wire.FileObject:
    async with upload_form(request, blobs.max_file_bytes) as form:
        purpose = _purpose(form.get("purpose"))
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidRequest(
                "Missing required parameter: 'file' (a multipart file part with a filename).", param="file"
            )
        filename = clean_filename(file.filename)
        file_id = new_id("file-")
        path, size = await blobs.save_stream(file_id, file.file)
    try:
        record = await store.add(
            FileRecord(id=file_id, created_at=now(), filename=filename, size=size, purpose=purpose, path=path)
        )
    except BaseException:
        await blobs.delete(path)  # no blob without its record
        raise
    return wire.file_object(record)


def _purpose(value: object) -> str:
    """The purpose field, refused as FastAPI's validation would refuse it (same message, same param)."""
    if value is None:
        error: dict[str, Any] = {"type": "missing", "loc": ("body", "purpose"), "msg": "Field required"}
        raise RequestValidationError([{**error, "input": None}])
    try:
        return _PURPOSE.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "purpose", *e["loc"])} for e in exc.errors()]
        ) from exc


@router.get("/files")
async def list_files(
    store: StoreDep, page: ListDep, purpose: Annotated[str | None, Query()] = None
) -> wire.ListObject[wire.FileObject]:
    found = await store.page(
        FileRecord, limit=page.limit, order=page.order, after=page.after, before=page.before, purpose=purpose
    )
    return wire.list_object(found, wire.file_object)


@router.get("/files/{file_id}")
async def retrieve_file(store: StoreDep, file_id: str) -> wire.FileObject:
    return wire.file_object(await store.get(FileRecord, file_id))


@router.delete("/files/{file_id}")
async def delete_file(
    store: StoreDep, blobs: BlobsDep, vector_stores: VectorStoresDep, file_id: str
) -> wire.DeletedObject:
    record = await store.get(FileRecord, file_id)
    await vector_stores.files.forget_file(file_id)  # it leaves every vector store it was in
    await store.remove(FileRecord, file_id)
    await blobs.delete(record.path)
    return wire.deleted_object(file_id, "file")


@router.get("/files/{file_id}/content", response_class=FileResponse)
async def download_file(store: StoreDep, blobs: BlobsDep, file_id: str) -> FileResponse:
    record = await store.get(FileRecord, file_id)
    path = await blobs.local_path(record.path)
    if not os.path.exists(path):
        raise NotFound(f"The content of file '{file_id}' is no longer on the server.")
    media_type = mimetypes.guess_type(record.filename)[0] or "application/octet-stream"
    return FileResponse(
        path, media_type=media_type, headers={"Content-Disposition": content_disposition(record.filename)}
    )
