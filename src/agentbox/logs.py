"""The server's logging: text lines for people (the default) or one JSON object per line for log pipelines.

AGENTBOX_LOG_FORMAT=json sends every record to stderr as a JSON object: time, level, logger,
message, the record's extra fields (a request's method, path, status, duration_ms; a run's ids and
statuses), and a traceback as one string. The stdlib formatter below is the whole of it, so no
package is added for it. JSON mode also logs one line per HTTP request (AccessLog) and per run
transition (engine/transitions.py); text mode keeps its old, quieter stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers whose INFO lines exist for log pipelines (JSON mode), not for a person reading stderr.
PIPELINE_LOGGERS = ("agentbox.access", "agentbox.runs")

# What every LogRecord carries; anything else on a record came from `extra=` and goes in the object.
_STANDARD = {*vars(logging.makeLogRecord({})), "message", "asctime", "color_message"}

access_log = logging.getLogger("agentbox.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(log_format: LogFormat) -> None:
    """Set up the root logger on stderr in the chosen format (the server calls this once, first)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        # Warnings and uncaught exceptions would otherwise reach stderr as bare text lines.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        for name in PIPELINE_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    logging.getLogger("agentbox").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value is not None else None
    logging.getLogger("agentbox").critical(
        "uncaught %s in thread %s",
        args.exc_type.__name__,
        args.thread.name if args.thread else "?",
        exc_info=exc_info,
    )


class AccessLog:
    """ASGI middleware: one log record per HTTP request once its response has ended (a stream's
    when the stream closes): method, path (no query string), status, duration_ms, and the client's
    X-Request-ID when it sent one. Status 500 stands for a request that ended before any answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            fields: dict[str, Any] = {
                "event": "request",
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    fields["request_id"] = value.decode("latin-1")
            access_log.info("%s %s %d", scope["method"], scope["path"], status, extra=fields)
