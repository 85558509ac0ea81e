"""The executor: a persistent Python kernel that runs cells sent as frames (runs INSIDE the sandbox).

Started as `python3 -E -s /opt/agentbox/inside/executor.py OUTPUT_LIMIT MAX_IMAGES` (gVisor), or
forked from the template (forkserver.py), which calls serve(); either way with the protocol on
fds 0/1. Synchronous and stdlib-only (plus whatever the runtime offers, imported if present).

Threads:  main      runs cells, one at a time, in one globals dict
          requests  reads frames from the server; an interrupt becomes a real SIGINT at once
          capture   drains the pipe that fds 1 and 2 point at (fd-level: os.write, subprocesses
                    and C extensions are captured too) and keeps the first OUTPUT_LIMIT bytes
"""

from __future__ import annotations

import ast
import base64
import contextlib
import importlib
import io
import linecache
import os
import queue
import secrets
import signal
import sys
import threading
import traceback
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentbox.sandbox.inside import frames
else:
    import frames  # inside the sandbox it sits next to this file; there is no agentbox package

REPR_LIMIT = 20_000
TRACEBACK_LIMIT = 20_000
MARKER_WAIT_S = 5.0
_CELL_PREFIX = "<cell-"


class Channel:
    """Frame writer on the private protocol fd (never fd 1, which user code owns)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, obj: dict[str, Any]) -> None:
        data = memoryview(frames.encode(obj))
        with self._lock:
            # A pipe write may be short; loop or the server waits forever for the rest.
            while data:
                n = os.write(self._fd, data)
                data = data[n:]


class Capture:
    """Everything written to fds 1 and 2, cut at `limit` bytes, with the true total counted."""

    def __init__(self, read_fd: int, write_fd: int, limit: int) -> None:
        self._rfd = read_fd
        self._wfd = write_fd  # our own end: the end marker still arrives if user code closes fd 1
        self._limit = limit
        self._cond = threading.Condition()
        self._kept = bytearray()
        self._total = 0
        self._held = b""
        self._marker: bytes | None = None
        self._marker_seen = False

    def start(self) -> None:
        threading.Thread(target=self._drain, name="capture", daemon=True).start()

    def reset(self) -> None:
        """Forget output written between cells (a background thread's, say) before a new cell."""
        with self._cond:
            self._kept.clear()
            self._total = 0
            self._held = b""

    def finish(self) -> tuple[bytes, int]:
        """Wait until everything written so far is drained; return (kept bytes, total bytes)."""
        marker = b"\x00agentbox-end-" + secrets.token_hex(16).encode() + b"\x00"
        with self._cond:
            self._marker, self._marker_seen = marker, False
        data = memoryview(marker)
        while data:
            data = data[os.write(self._wfd, data) :]
        with self._cond:
            self._cond.wait_for(lambda: self._marker_seen, timeout=MARKER_WAIT_S)
            self._marker = None
            if self._held:
                self._account(self._held)
                self._held = b""
            return bytes(self._kept), self._total

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._rfd, 1 << 16)
            except InterruptedError:
                continue
            if not chunk:
                return
            with self._cond:
                data = self._held + chunk
                self._held = b""
                if self._marker is None:
                    self._account(data)
                    continue
                at = data.find(self._marker)
                if at >= 0:
                    # What follows the marker was written after the cell ended: dropped.
                    self._account(data[:at])
                    self._marker_seen = True
                    self._cond.notify_all()
                    continue
                # The marker may straddle two reads: hold back a possible prefix of it.
                keep = len(self._marker) - 1
                self._account(data[:-keep] if len(data) > keep else b"")
                self._held = data[-keep:] if len(data) > keep else data

    def _account(self, data: bytes) -> None:
        self._total += len(data)
        room = self._limit - len(self._kept)
        if room > 0:
            self._kept += data[:room]


class Kernel:
    """One namespace, cells run in order; interrupts only land while a cell is running."""

    def __init__(self, channel: Channel, capture: Capture, max_images: int) -> None:
        self._channel = channel
        self._capture = capture
        self._max_images = max_images
        self._globals: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self._count = 0
        self._running_id: int | None = None
        self._state_lock = threading.Lock()
        self._images: list[bytes] = []
        self._pyplot: Any = None

    # --- set-up -----------------------------------------------------------------------------
    def preimport(self) -> None:
        """Import the heavy libraries before hello so the first cell does not pay for them."""
        plt = preimport()
        if plt is None:
            return
        self._pyplot = plt
        kernel = self

        def show(*args: Any, **kwargs: Any) -> None:
            """Jupyter-inline show(): display every open figure as PNG, then close it."""
            kernel._show()

        setattr(plt, "show", show)  # noqa: B010 - a module from import_module is typed as ModuleType

    def on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        # Between cells (a late interrupt) there is nothing to stop.
        if self._running_id is not None:
            raise KeyboardInterrupt

    def interrupt(self, request_id: Any) -> None:
        with self._state_lock:
            if self._running_id is not None and self._running_id == request_id:
                os.kill(os.getpid(), signal.SIGINT)

    # --- one cell ---------------------------------------------------------------------------
    def run(self, request_id: int, code: str) -> None:
        self._count += 1
        self._images = []
        self._capture.reset()
        status, error, tb_text, exit_code = "ok", None, None, None
        try:
            with self._state_lock:
                self._running_id = request_id
            try:
                self._execute(code)
                self._show()
            finally:
                with self._state_lock:
                    self._running_id = None
        except SystemExit as exc:
            status, exit_code = "exited", _exit_status(exc.code)
        except BaseException as exc:  # the user's error is the cell's result, whatever it is
            status, error = "error", type(exc).__name__
            tb_text = _format_exception(exc)[:TRACEBACK_LIMIT]
        for stream in (sys.stdout, sys.stderr):
            # User code may have closed or broken its own stream; the fd-level capture still works.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        kept, total = self._capture.finish()
        for png in self._images:
            encoded = base64.b64encode(png).decode("ascii")
            self._channel.send({"op": "image", "id": request_id, "png": encoded})
        self._channel.send(
            {
                "op": "end",
                "id": request_id,
                "status": status,
                "output": kept.decode("utf-8", "backslashreplace"),
                "output_bytes": total,
                "error": error,
                "traceback": tb_text,
                "exit_code": exit_code,
            }
        )
        if status == "exited":
            os._exit(exit_code or 0)

    def _execute(self, code: str) -> None:
        filename = f"{_CELL_PREFIX}{self._count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename=filename, mode="exec")
        last: ast.expr | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body[-1].value
            del tree.body[-1]
        exec(compile(tree, filename, "exec"), self._globals)
        if last is not None:
            value = eval(compile(ast.Expression(last), filename, "eval"), self._globals)
            if value is not None:
                self._globals["_"] = value
                text = repr(value)
                if len(text) > REPR_LIMIT:
                    text = text[:REPR_LIMIT] + f"... [repr truncated: {len(text)} characters]"
                print(text)

    def _show(self) -> None:
        plt = self._pyplot
        if plt is None:
            return
        for num in plt.get_fignums():
            fig = plt.figure(num)
            if len(self._images) < self._max_images:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", bbox_inches="tight")
                self._images.append(buf.getvalue())
            plt.close(fig)


def preimport() -> Any:
    """Import numpy, pandas and matplotlib (Agg) where the runtime has them; pyplot or None."""
    for name in ("numpy", "pandas"):
        with contextlib.suppress(ImportError):
            __import__(name)
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    # Resolve the backend now: pyplot's lazy switch would later overwrite our show().
    plt.switch_backend("Agg")
    return plt


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _format_exception(exc: BaseException) -> str:
    """The traceback from the first frame of the cell on: the executor's own frames are noise."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(_CELL_PREFIX):
        tb = tb.tb_next
    te = traceback.TracebackException(type(exc), exc.with_traceback(tb), tb)
    # The SIGINT handler's own frame would end every KeyboardInterrupt traceback: drop it.
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename != __file__])
    return "".join(te.format())


def _read_requests(fd: int, kernel: Kernel, channel: Channel, cells: queue.Queue[Any]) -> None:
    decoder = frames.Decoder()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except InterruptedError:
            continue
        if not chunk:
            break
        decoder.feed(chunk)
        try:
            while (frame := decoder.next_frame()) is not None:
                op = frame["op"]
                if op == "exec":
                    cells.put(frame)
                elif op == "interrupt":
                    kernel.interrupt(frame.get("id"))
                elif op == "ping":
                    channel.send({"op": "pong", "id": frame.get("id")})
        except frames.FrameError:
            break
    # The server is gone or broken: nothing left to do for anyone.
    os._exit(0)


def _move_fds(output_limit: int) -> tuple[int, int, Capture]:
    """Move the protocol off 0/1, point 0 at /dev/null and 1/2 at the capture pipe."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)  # subprocesses of user code must not hold the protocol
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)  # one pipe for both: stdout and stderr interleave as produced
    return proto_in, proto_out, Capture(read_fd, write_fd, output_limit)


def _text_stream(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )


def serve(output_limit: int, max_images: int) -> None:
    """Serve the protocol on fds 0/1 (fd 2: the server's diagnostics pipe) until the server goes."""
    proto_in, proto_out, capture = _move_fds(output_limit)
    # The originals too: libraries that restore sys.__stdout__ must land on the capture pipe.
    for name, stream in (("stdout", _text_stream(1)), ("stderr", _text_stream(2))):
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
    capture.start()
    channel = Channel(proto_out)
    kernel = Kernel(channel, capture, max_images)
    kernel.preimport()
    signal.signal(signal.SIGINT, kernel.on_sigint)
    cells: queue.Queue[Any] = queue.Queue()
    threading.Thread(
        target=_read_requests, args=(proto_in, kernel, channel, cells), name="requests", daemon=True
    ).start()
    channel.send({"op": "hello", "version": frames.PROTOCOL_VERSION, "pid": os.getpid()})
    while True:
        try:
            frame = cells.get()
        except KeyboardInterrupt:
            continue  # an interrupt that arrived after its cell had ended
        request_id, code = frame.get("id"), frame.get("code")
        if not isinstance(request_id, int) or not isinstance(code, str):
            continue
        kernel.run(request_id, code)


def main() -> None:
    output_limit = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    max_images = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    serve(output_limit, max_images)


if __name__ == "__main__":
    main()
