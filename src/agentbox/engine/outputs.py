"""The one place that turns sandbox executions into run-step outputs, model feedback and message parts."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from agentbox.sandbox import Execution, ExecutionStatus

# A link target the model writes for a file it saved: sandbox:/mnt/data/<name>, up to the closing
# bracket, quote or whitespace of the markdown around it.
SANDBOX_LINK = re.compile(r"sandbox:/mnt/data/([^\s)\]\"'<>]+)")

_STATE_LOST = (
    "Note: the sandbox session was restarted before this code ran, so variables from earlier code are "
    "gone; files in /mnt/data were kept."
)


FEEDBACK_HEAD = 8_000
FEEDBACK_TAIL = 4_000
"""Characters of a long output the model reads back: its start (what the code printed first, often
the answer) and its end (where a traceback is); the step keeps the whole output."""


def not_stored(name: str) -> str:
    """Why a file the code wrote is not offered for download: the server's disk is full."""
    return (
        f"The server's disk is full: /mnt/data/{name}, which the code wrote, could not be stored as a file "
        "for you, and nothing of it was kept (it is still in the session's /mnt/data). Free space in the "
        "server's data dir (delete files you no longer need), then run again."
    )


@dataclass(frozen=True, slots=True)
class StoredImage:
    file_id: str


def step_outputs(execution: Execution, images: list[StoredImage]) -> list[dict[str, Any]]:
    """`code_interpreter.outputs` of a tool_calls step: the logs, then each image."""
    outputs: list[dict[str, Any]] = []
    if execution.logs:
        outputs.append({"type": "logs", "logs": execution.logs})
    outputs.extend({"type": "image", "image": {"file_id": image.file_id}} for image in images)
    return outputs


def model_feedback(execution: Execution, images: list[StoredImage]) -> str:
    """What the model reads back as the tool result, so it can fix its code and continue."""
    lines: list[str] = []
    if execution.restarted:
        why = f" Why: {execution.state_lost_reason}" if execution.state_lost_reason else ""
        lines.append(_STATE_LOST + why)
    if execution.logs:
        lines.append(clip(execution.logs.rstrip("\n")))
    if execution.status is ExecutionStatus.OK and not execution.logs:
        lines.append("(the code ran without output)")
    if images:
        lines.append(f"[{len(images)} image(s) were displayed to the user]")
    if execution.changed_files:
        listed = ", ".join(f"/mnt/data/{name}" for name in execution.changed_files)
        lines.append(f"[files written: {listed}]")
    return "\n".join(lines)


def clip(text: str, head: int = FEEDBACK_HEAD, tail: int = FEEDBACK_TAIL) -> str:
    """A long output as its head and tail around a marker giving the true size, so a cell that prints
    megabytes does not fill the model's context window."""
    if len(text) <= head + tail:
        return text
    omitted = len(text) - head - tail
    marker = f"[… {omitted:,} characters omitted of {len(text):,} …]"
    return f"{text[:head]}\n{marker}\n{text[len(text) - tail :]}"


def linked_names(text: str) -> list[tuple[str, int, int, str]]:
    """Each sandbox link in the text as (link text, start, end, file name inside /mnt/data)."""
    found = []
    for match in SANDBOX_LINK.finditer(text):
        name = urllib.parse.unquote(match.group(1)).rstrip(".,;:")
        end = match.start() + len("sandbox:/mnt/data/") + len(match.group(1).rstrip(".,;:"))
        found.append((text[match.start() : end], match.start(), end, name))
    return found


def annotation(link_text: str, start: int, end: int, file_id: str) -> dict[str, Any]:
    return {
        "type": "file_path",
        "text": link_text,
        "start_index": start,
        "end_index": end,
        "file_path": {"file_id": file_id},
    }


def answer_content(
    text: str, annotations: list[dict[str, Any]], image_ids: list[str]
) -> list[dict[str, Any]]:
    """The assistant message: one image_file part per figure of the run, then the annotated text."""
    parts: list[dict[str, Any]] = [{"type": "image_file", "image_file": {"file_id": i}} for i in image_ids]
    parts.append({"type": "text", "text": {"value": text, "annotations": annotations}})
    return parts
