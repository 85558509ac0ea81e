"""The only table from error class to HTTP status and OpenAI error body."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from agentbox.errors import (
    AgentboxError,
    Conflict,
    InvalidRequest,
    ModelError,
    NotFound,
    PayloadTooLarge,
    SandboxError,
    SandboxUnavailable,
    StorageFull,
    StoreUnavailable,
    Unauthorized,
)
from agentbox.ids import new_id
from agentbox.store.blobs import DISK_FULL_ERRNOS, storage_full

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
_STATUS: list[tuple[type[AgentboxError], int, str]] = [
    (NotFound, 404, "invalid_request_error"),
    (PayloadTooLarge, 413, "invalid_request_error"),
    (InvalidRequest, 400, "invalid_request_error"),
    (Unauthorized, 401, "invalid_request_error"),
    (Conflict, 400, "invalid_request_error"),
    # RFC 4918's "unable to store the representation": a full disk, told apart from a crash's 500;
    # OpenAI's clients treat it as any 5xx (retried, then raised with this message).
    (StorageFull, 507, "server_error"),
    (StoreUnavailable, 503, "server_error"),
    (SandboxUnavailable, 503, "server_error"),
    (SandboxError, 500, "server_error"),
    (ModelError, 502, "server_error"),
]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_and_body(exc: AgentboxError) -> tuple[int, dict[str, Any]] | None:
    """The HTTP status and OpenAI error body of an error; None for one without a row here."""
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            code = exc.code or ("invalid_api_key" if status == 401 else None)
            return status, error_body(exc.message, type_, exc.param, code)
    return None


def _agentbox_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentboxError)
    found = status_and_body(exc)
    if found is None:
        return _unexpected(_request, exc)
    return JSONResponse(found[1], status_code=found[0])


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    # A value that fits no member of a union fails once per member; the member that got furthest
    # into the value is the one the client meant.
    first: dict[str, Any] = max(errors, key=lambda e: len(_names(e.get("loc", ()))), default={})
    param = _param(first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "json_invalid":
        # Name the decoder's complaint and where: broken bodies are usually hand-written (curl).
        problem = str(first.get("ctx", {}).get("error", "invalid JSON"))
        position = first.get("loc", ("body", None))[-1]
        where = f" at character {position}" if isinstance(position, int) else ""
        message = (
            f"We could not parse the JSON body of your request: {problem}{where}. "
            "The body must be valid JSON."
        )
        param = None
    elif param is None and kind in ("model_attributes_type", "dict_type"):
        # The body was not a JSON object: a JSON array, or a form/text body (curl -d without -H).
        message = "The request body must be a JSON object, sent with 'Content-Type: application/json'."
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'."
    elif param:
        # Several members failing at the same place: name each problem once.
        same = [e for e in errors if _param(e.get("loc", ())) == param]
        problems = dict.fromkeys(str(e.get("msg", "invalid")) for e in same)
        message = f"Invalid value for '{param}': {', or '.join(problems)}."
    else:
        message = str(first.get("msg"))
    return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)


_WHERE = ("body", "query", "path", "header")
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _names(loc: Any) -> list[str]:
    """The client's path to a value, without pydantic's union-member tags: 'str', 'list[...]', and
    the discriminator of a part shaped {"type": "image_file", "image_file": {…}} (the tag repeats).
    The first name is always the client's own ('include[]')."""
    # Only the leading location goes: a body field may be named "query" (vector store search).
    path = [str(p) for p in (loc[1:] if loc and loc[0] in _WHERE else loc)]
    return [
        p
        for i, p in enumerate(path)
        if i == 0 or not (p in _TYPE_TAGS or "[" in p or p[:1].isupper() or path[i + 1 : i + 2] == [p])
    ]


def _param(loc: Any) -> str | None:
    return ".".join(_names(loc)) or None


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = {404: "Unknown request URL.", 405: "Method not allowed for this URL."}.get(
        exc.status_code, str(exc.detail)
    )
    return JSONResponse(
        error_body(f"{message} ({_request.method} {_request.url.path})", "invalid_request_error"),
        status_code=exc.status_code,
    )


def _in_chain(exc: BaseException | None, found: Callable[[BaseException], bool]) -> bool:
    """Whether `found` holds for the error or anything down its cause/context chain."""
    while exc is not None:
        if found(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_full(exc: BaseException) -> bool:
    """A full data dir: OSError ENOSPC/EDQUOT, or SQLite's own words for it."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)


def _database_locked(exc: BaseException) -> bool:
    """SQLite gave up waiting (busy_timeout) for another writer's lock: busy, not broken."""
    return isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if _in_chain(exc, _database_locked):
        return JSONResponse(
            error_body("The database is busy with another writer; retry the request.", "server_error"),
            status_code=503,
            headers={"retry-after": "1"},
        )
    if _in_chain(exc, _disk_full):
        full = storage_full("the request's changes")
        return JSONResponse(error_body(full.message, "server_error", None, full.code), status_code=507)
    request_id = new_id("req_")
    log.error("request %s %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(
            f"The server had an error processing your request (request id {request_id}).", "server_error"
        ),
        status_code=500,
        headers={"x-request-id": request_id},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AgentboxError, _agentbox_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


# Declared on every router so the OpenAPI document lists the errors the routes really answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Invalid request (bad JSON, missing or invalid field, conflicting state)"),
        (401, "Missing or wrong API key"),
        (404, "No object with that id"),
        (500, "Server error"),
    )
}
