"""`agentbox exec` on a terminal: a cell's output where it belongs, as it comes; Ctrl-C interrupts.

The program's own stdout goes to stdout; its stderr, the traceback, the container id and the files
it made go to stderr, so `agentbox exec … > out.txt` keeps just what the cell printed.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from agentbox.client.http import Client

_ENDINGS = {  # what the traceback does not say ("killed" has its sentence in error.value)
    "timeout": "the cell ran past its timeout and was stopped (variables kept)",
    "interrupted": "the cell was interrupted (variables kept)",
}


def _in_background(events: Iterator[dict[str, Any]]) -> queue.Queue[dict[str, Any] | Exception]:
    """The events, read by a thread: the main thread stays free to turn Ctrl-C into an interrupt."""
    found: queue.Queue[dict[str, Any] | Exception] = queue.Queue(maxsize=1024)

    def pump() -> None:
        try:
            for event in events:
                found.put(event)
        except Exception as exc:  # raised again by the reader, in the main thread
            found.put(exc)

    threading.Thread(target=pump, daemon=True).start()
    return found


class _CtrlC:
    """Counts Ctrl-C presses while installed, instead of raising KeyboardInterrupt wherever it lands."""

    def __init__(self) -> None:
        self.count = 0

    def _press(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, self._press)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _show(event: dict[str, Any], shown: set[str]) -> int | None:
    """Print one event where it belongs; the exit status once the cell has ended."""
    kind = event.get("type")
    if kind == "exec.output.delta":
        stream = sys.stdout if event["stream"] == "stdout" else sys.stderr
        stream.write(event["delta"])
        stream.flush()
    elif kind == "exec.image":
        shown.add(event["file"]["id"])
        print(f"image: {event['file']['id']} {event['file']['path']}", file=sys.stderr, flush=True)
    elif kind == "exec.completed":
        sys.stdout.flush()
        result = event["exec"]
        for image in result["images"]:
            if image["id"] not in shown:
                print(f"image: {image['id']} {image['path']}", file=sys.stderr)
        for file in result["files"]:
            print(f"file: {file['id']} {file['path']}", file=sys.stderr)
        if error := result.get("error"):
            print(
                (error.get("traceback") or f"{error['name']}: {error['value']}").rstrip("\n"), file=sys.stderr
            )
        if ending := _ENDINGS.get(result["status"]):
            print(f"agentbox: {ending}", file=sys.stderr)
        if result.get("restarted") and result.get("state_lost_reason"):
            print(f"agentbox: variables were lost: {result['state_lost_reason']}", file=sys.stderr)
        if result.get("output_truncated"):
            print("agentbox: output was cut at the server's limit", file=sys.stderr)
        sys.stderr.flush()
        return 0 if result["status"] == "ok" else 1
    return None


def run_cell(client: Client, code: str, *, container_id: str | None, timeout_s: float | None) -> int:
    """Run `code` in the container (a new one when None), printing as it comes; the exit status.

    Ctrl-C interrupts the cell and waits for its end; a second Ctrl-C stops waiting (130).
    Raises ServerError when the server cannot run it.
    """
    if container_id is None:
        container_id = client.create_container("agentbox-exec")
        print(f"container: {container_id} (pass --container {container_id} to reuse it)", file=sys.stderr)
        sys.stderr.flush()
    events = _in_background(client.exec_events(container_id, code, timeout_s))
    shown: set[str] = set()
    presses = _CtrlC()
    interrupted = False
    with presses.installed():
        while True:
            # The handler only counts: a KeyboardInterrupt raised mid-print would skip the interrupt.
            if presses.count and not interrupted:
                interrupted = True
                print(
                    "\nagentbox: interrupting the cell (Ctrl-C again: stop waiting)",
                    file=sys.stderr,
                    flush=True,
                )
                client.interrupt(container_id)
            if presses.count > 1:
                stopped = f"\nagentbox: stopped waiting; the cell may still run in {container_id}"
                print(stopped, file=sys.stderr)
                return 130
            try:
                event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(event, Exception):
                raise event
            status = _show(event, shown)
            if status is not None:
                return status
