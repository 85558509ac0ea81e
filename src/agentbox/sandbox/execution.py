"""The values the session manager hands the engine: one cell's outcome and an input file."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class ExecutionStatus(enum.Enum):
    OK = "ok"
    ERROR = "error"  # user code raised
    TIMEOUT = "timeout"  # interrupted at the deadline, state kept
    INTERRUPTED = "interrupted"  # stopped on request (SessionManager.interrupt), state kept
    # session killed (grace expired, kernel died/crashed/exited, OOM): variables lost, files kept
    KILLED = "killed"


@dataclass(frozen=True, slots=True)
class CellError:
    """The exception a cell raised."""

    name: str
    value: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Execution:
    status: ExecutionStatus
    logs: str
    """stdout+stderr as produced, then the traceback, the last expression's repr, and for
    TIMEOUT/KILLED a sentence saying what happened; cut at the output limit with a marker line."""
    images: tuple[bytes, ...]
    """PNG bytes of each figure the cell displayed, else image files it wrote to /mnt/data."""
    image_files: tuple[str, ...]
    """When the images are files the cell wrote (it displayed no figure): their names, one per image."""
    changed_files: tuple[str, ...]
    """Names relative to /mnt/data of regular files the cell created or modified (server-side scan)."""
    restarted: bool
    """The cell ran in a fresh kernel although an earlier kernel of this session existed."""
    duration_s: float
    oom: bool = False
    """The session's memory cgroup killed it (logs then end with kernel.OOM_MESSAGE)."""
    state_lost_reason: str | None = None
    """Why variables are gone when restarted is set: the kernel died, or the session expired."""
    stdout: str = ""
    stderr: str = ""
    """Each stream on its own as written (capped like logs, without logs' added sentences)."""
    output_truncated: bool = False
    error: CellError | None = None
    """The cell's exception; for KILLED, name "SessionKilled" and the reason as value."""


@dataclass(frozen=True, slots=True)
class InputFile:
    name: str
    """Final file name inside /mnt/data (the caller has sanitised and de-duplicated it)."""
    source: Path
    """Host path of the stored bytes; only read."""
    file_id: str
    blob: str = ""
    """The bytes' name in the blob store: a fleet node on another machine fetches them by it."""
