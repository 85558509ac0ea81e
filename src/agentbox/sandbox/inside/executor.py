"""The executor: a persistent Python kernel that runs cells sent as frames (runs INSIDE the sandbox).

Started as `python3 -E -s /opt/agentbox/inside/executor.py OUTPUT_LIMIT MAX_IMAGES` (gVisor), or
forked from the template (forkserver.py), which calls serve(); either way with the protocol on
fds 0/1. Synchronous and stdlib-only (plus whatever the runtime offers, imported if present).

Threads:  main      runs cells, one at a time, in one globals dict
          requests  reads frames from the server; an interrupt becomes a real SIGINT at once
          capture   drains the pipes that fds 1 and 2 point at, one each (fd-level: os.write,
                    subprocesses and C extensions are captured too), and sends what it reads as
                    output frames at once, up to OUTPUT_LIMIT bytes of both together
"""

from __future__ import annotations

import ast
import base64
import codecs
import contextlib
import importlib
import io
import linecache
import os
import queue
import secrets
import select
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


class _Pipe:
    """One captured stream: the pipe its fd points at, and what a read left undecided."""

    def __init__(self, name: str, read_fd: int, write_fd: int) -> None:
        self.name = name
        self.read_fd = read_fd
        self.write_fd = write_fd  # our own end: the end marker still arrives if user code closes the fd
        self.held = b""
        self.marker_seen = False
        self.decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")


class Capture:
    """Everything written to fds 1 and 2 (one pipe each), sent live as output frames while a cell
    runs; the first `limit` bytes of both together are kept and sent, the true total counted."""

    def __init__(self, pipes: list[_Pipe], limit: int) -> None:
        self._pipes = pipes
        self._limit = limit
        self._cond = threading.Condition()
        self._kept = 0
        self._total = 0
        self._marker: bytes | None = None
        self._channel: Channel | None = None
        self._request_id: int | None = None

    def start(self, channel: Channel) -> None:
        self._channel = channel
        threading.Thread(target=self._drain, name="capture", daemon=True).start()

    def begin(self, request_id: int) -> None:
        """Send what is written from now on as the cell's output; output written between cells
        (a background thread's, say) is dropped."""
        with self._cond:
            self._kept = self._total = 0
            self._request_id = request_id
            for pipe in self._pipes:
                pipe.held = b""
                pipe.decoder.reset()

    def finish(self) -> int:
        """Wait until everything written so far is drained and sent; the total bytes written."""
        marker = b"\x00agentbox-end-" + secrets.token_hex(16).encode() + b"\x00"
        with self._cond:
            self._marker = marker
            for pipe in self._pipes:
                pipe.marker_seen = False
        for pipe in self._pipes:
            data = memoryview(marker)
            while data:
                data = data[os.write(pipe.write_fd, data) :]
        with self._cond:
            self._cond.wait_for(lambda: all(p.marker_seen for p in self._pipes), timeout=MARKER_WAIT_S)
            self._marker = None
            pieces = []
            for pipe in self._pipes:
                held, pipe.held = pipe.held, b""
                pieces.append((pipe, self._account(pipe, held, final=True)))
            request_id, self._request_id = self._request_id, None
            total = self._total
        for pipe, text in pieces:
            self._send(request_id, pipe, text)
        return total

    def _drain(self) -> None:
        # One thread polls both pipes, stdout's first when both have data: what was written to
        # one stream and then the other is, all but always, read in that order too.
        poller = select.poll()
        by_fd = {pipe.read_fd: pipe for pipe in self._pipes}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while by_fd:
            try:
                ready = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in sorted(ready):
                pipe = by_fd[fd]
                try:
                    chunk = os.read(fd, 1 << 16)
                except InterruptedError:
                    continue
                if not chunk:
                    poller.unregister(fd)
                    del by_fd[fd]
                    continue
                self._take(pipe, chunk)

    def _take(self, pipe: _Pipe, chunk: bytes) -> None:
        seen = False
        with self._cond:
            data = pipe.held + chunk
            pipe.held = b""
            request_id = self._request_id
            if self._marker is None:
                text = self._account(pipe, data)
            else:
                at = data.find(self._marker)
                if at >= 0:
                    # What follows the marker was written after the cell ended: dropped.
                    text = self._account(pipe, data[:at])
                    seen = True
                else:
                    # The marker may straddle two reads: hold back a possible prefix of it.
                    keep = len(self._marker) - 1
                    text = self._account(pipe, data[:-keep] if len(data) > keep else b"")
                    pipe.held = data[-keep:] if len(data) > keep else data
        # Sent before the marker is reported seen, so every output frame precedes the end frame.
        self._send(request_id, pipe, text)
        if seen:
            with self._cond:
                pipe.marker_seen = True
                self._cond.notify_all()

    def _account(self, pipe: _Pipe, data: bytes, final: bool = False) -> str:
        """Count data; the text of the part that fits under the limit (caller holds the lock)."""
        if self._request_id is None:
            return ""  # no cell is running: nobody to send it to
        self._total += len(data)
        room = max(self._limit - self._kept, 0)
        kept = data[:room]
        self._kept += len(kept)
        return pipe.decoder.decode(kept, final)

    def _send(self, request_id: int | None, pipe: _Pipe, text: str) -> None:
        if text and request_id is not None and self._channel is not None:
            self._channel.send({"op": "output", "id": request_id, "stream": pipe.name, "text": text})


class Kernel:
    """One namespace, cells run in order; interrupts only land while a cell is running."""

    def __init__(self, channel: Channel, capture: Capture, max_images: int) -> None:
        self._channel = channel
        self._capture = capture
        self._max_images = max_images
        self._globals: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self._count = 0
        self._running_id: int | None = None
        self._last_started = 0
        self._early_interrupt: int | None = None  # an interrupt that came before its cell started
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
            elif isinstance(request_id, int) and request_id > self._last_started:
                self._early_interrupt = request_id  # still queued: it stops as soon as it starts

    # --- one cell ---------------------------------------------------------------------------
    def run(self, request_id: int, code: str) -> None:
        self._count += 1
        self._images = []
        self._capture.begin(request_id)
        status, error, value, tb_text, exit_code = "ok", None, None, None, None
        try:
            with self._state_lock:
                self._running_id = self._last_started = request_id
                stopped_early = self._early_interrupt == request_id
            try:
                if stopped_early:
                    raise KeyboardInterrupt
                self._execute(code)
                self._show()
            finally:
                with self._state_lock:
                    self._running_id = None
        except SystemExit as exc:
            status, exit_code = "exited", _exit_status(exc.code)
        except BaseException as exc:  # the user's error is the cell's result, whatever it is
            status, error, value = "error", type(exc).__name__, _safe_str(exc)[:REPR_LIMIT]
            tb_text = _format_exception(exc)[:TRACEBACK_LIMIT]
        for stream in (sys.stdout, sys.stderr):
            # User code may have closed or broken its own stream; the fd-level capture still works.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        total = self._capture.finish()
        for png in self._images:
            encoded = base64.b64encode(png).decode("ascii")
            self._channel.send({"op": "image", "id": request_id, "png": encoded})
        self._channel.send(
            {
                "op": "end",
                "id": request_id,
                "status": status,
                "output_bytes": total,
                "error": error,
                "error_value": value,
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


def _safe_str(exc: BaseException) -> str:
    """str(exc), or a placeholder when the exception's own __str__ fails."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


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
    """Move the protocol off 0/1, point 0 at /dev/null and 1 and 2 each at its capture pipe."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)  # subprocesses of user code must not hold the protocol
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    pipes = []
    for fd, name in ((1, "stdout"), (2, "stderr")):
        read_fd, write_fd = os.pipe()  # not inheritable; the dup2 copy at fd 1/2 is
        os.dup2(write_fd, fd)
        pipes.append(_Pipe(name, read_fd, write_fd))
    return proto_in, proto_out, Capture(pipes, output_limit)


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
    channel = Channel(proto_out)
    capture.start(channel)
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
