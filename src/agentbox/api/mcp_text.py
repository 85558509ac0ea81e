"""What the MCP tools say: the descriptions a model reads, how an execution reads as text, and how
a file's bytes are told apart (text, image, too large to return)."""

from __future__ import annotations

import mimetypes
from typing import Any

from agentbox.engine.execs import ExecResult
from agentbox.store.records import ContainerFileRecord

TEXT_LIMIT = 256 << 10
"""read_file returns at most this many bytes of a text file (the rest is left for run_python)."""
BINARY_LIMIT = 8 << 20
"""The largest file read_file / get_image return inline (larger: the HTTP files route)."""

INSTRUCTIONS = (
    "agentbox runs Python in an isolated sandbox with no network access. Each MCP session has its own "
    "container: variables, imports and files persist from one run_python call to the next, like cells "
    "of one notebook, until the container expires after a period of disuse. Files live in /mnt/data. "
    "Every result ends with the container_id; a client without an MCP session passes it back as "
    "container_id to keep working in the same container."
)

_CONTAINER = (
    " Every result ends with `container_id: cntr_…`; pass that as container_id to reach the same "
    "container from a client without an MCP session (with a session it is used automatically)."
)

DESCRIPTIONS = {
    "run_python": (
        "Run Python code in a stateful, sandboxed Python session and return what it printed. "
        "Variables, imports and files persist between calls (like notebook cells); the value of a final "
        "bare expression is printed as its repr. Read inputs from and save outputs to /mnt/data. "
        "Installed: pandas, numpy, scipy, matplotlib, seaborn, scikit-learn, openpyxl, xlsxwriter, "
        "python-docx, python-pptx, pypdf, Pillow; there is no network access and no pip install. "
        "The result has stdout, stderr, and on failure the exception with its traceback (isError is "
        "then true); every matplotlib figure the code shows (plt.show()) or leaves open comes back as a "
        "PNG image and is also saved under /mnt/data/figures/. A cell that runs past its timeout is "
        "interrupted and its variables are kept." + _CONTAINER
    ),
    "list_files": (
        "List the files in the container's /mnt/data: path, size in bytes and file id. Includes files "
        "written with write_file, uploaded through the HTTP API, and created or changed by run_python "
        "(figures are under /mnt/data/figures/)." + _CONTAINER
    ),
    "read_file": (
        "Read a file from /mnt/data. A text (UTF-8) file comes back as text, its first 256 KiB if it is "
        "longer; a binary file (xlsx, pdf, zip, images …) comes back as an embedded resource holding its "
        "bytes in base64 with its MIME type (up to 8 MiB). To look at an image use get_image; to inspect "
        "a large or binary file, load it with run_python instead." + _CONTAINER
    ),
    "write_file": (
        "Create or replace a file directly under /mnt/data, where run_python's code can open it (e.g. "
        "write 'data.csv', then pd.read_csv('/mnt/data/data.csv')). content is text (written as UTF-8) "
        "or, with encoding='base64', the file's bytes in base64. For a path in a subdirectory write it "
        "with run_python." + _CONTAINER
    ),
    "get_image": (
        "Return an image file from /mnt/data (PNG, JPEG, GIF, WebP or SVG) as an image you can see, for "
        "example a chart saved with plt.savefig('/mnt/data/chart.png') or a figure run_python listed "
        "under /mnt/data/figures/." + _CONTAINER
    ),
}

IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),  # with "WEBP" at offset 8
)

_STATUS = {
    "error": "error",
    "timeout": "timeout: the cell was interrupted at its time limit; variables are kept",
    "interrupted": "interrupted; variables are kept",
    "killed": "killed: the Python session died and its variables are lost (files are kept)",
}


def file_data(record: ContainerFileRecord) -> dict[str, Any]:
    return {"file_id": record.id, "path": record.path, "bytes": record.bytes, "source": record.source}


def exec_text(result: ExecResult) -> str:
    """One cell's outcome as a model should read it: output first, then what went wrong, then facts."""
    parts: list[str] = []
    if result.state_lost_reason:
        parts.append(
            f"[The Python session had restarted ({result.state_lost_reason}): variables from earlier "
            "calls are gone; files in /mnt/data are kept.]"
        )
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.error is not None:
        summary = f"{result.error.name}: {result.error.value}"
        traceback = result.error.traceback.rstrip("\n")
        parts.append(traceback if summary in traceback else f"{traceback}\n{summary}".strip())
    if result.output_truncated:
        parts.append("[output truncated]")
    facts = [_STATUS.get(result.status, result.status), f"{round(result.duration_s * 1000)} ms"]
    if result.images:
        facts.append(f"{len(result.images)} figure(s): " + ", ".join(i.path for i in result.images))
    changed = [f.path for f in result.files if f not in result.images]
    if changed:
        facts.append("files written: " + ", ".join(changed))
    if not (result.stdout or result.stderr or result.error):
        parts.append("(no output)")
    parts.append("[" + "; ".join(facts) + "]")
    return "\n".join(parts)


def exec_data(result: ExecResult) -> dict[str, Any]:
    """The same outcome for a program: the fields of the HTTP API's container.exec object."""
    error = result.error
    return {
        "exec_id": result.id,
        "status": result.status,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "output_truncated": result.output_truncated,
        "error": None
        if error is None
        else {"name": error.name, "value": error.value, "traceback": error.traceback},
        "images": [file_data(i) for i in result.images],
        "files": [file_data(f) for f in result.files],
        "restarted": result.restarted,
        "state_lost_reason": result.state_lost_reason,
        "duration_ms": round(result.duration_s * 1000),
    }


def image_type(data: bytes, path: str) -> str | None:
    for magic, mime in IMAGE_MAGIC:
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    guessed = mimetypes.guess_type(path)[0]
    return guessed if guessed in ("image/svg+xml",) else None


def as_text(data: bytes) -> str | None:
    """The first TEXT_LIMIT bytes as text, or None for a binary file (not UTF-8, or NUL bytes)."""
    head = data[:TEXT_LIMIT]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut in two by the limit is still text.
        if len(data) <= TEXT_LIMIT or exc.reason != "unexpected end of data":
            return None
        text = head[: exc.start].decode("utf-8")
    return None if "\x00" in text else text


def too_big(record: ContainerFileRecord) -> str:
    return (
        f"{record.path} is {record.bytes} bytes, more than the {BINARY_LIMIT} returned here; download "
        f"it with GET /v1/containers/{record.container_id}/files/{record.id}/content."
    )


def truncated(size: int) -> str:
    return f"\n[… truncated: the first {TEXT_LIMIT} of {size} bytes; run_python can read it all]"
