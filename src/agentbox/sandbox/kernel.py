"""One running executor seen from the server: start it, run a cell under the timeout ladder, kill it.

    run(code):  exec ──output…──end──▶ Reply                 (output frames reach on_output live)
                  │ interrupt()  ──end within grace──▶ Reply(stopped=True)
                  │ deadline
                  ▼
                interrupt ──end within grace──▶ Reply(interrupted=True)   (state kept)
                  │ grace expired
                  ▼
                kill ──▶ KernelGone("...")                                (state lost)

A stream that ends before the end frame (exit, crash, OOM) is KernelGone as well. The server
never trusts the executor's word beyond bytes: frames are type-checked and capped here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentbox.errors import InvalidRequest, ProtocolError, SandboxUnavailable
from agentbox.sandbox.inside import frames

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
READ_CHUNK = 1 << 16
SPAWN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
STDERR_KEEP = 4096
REAP_WAIT_S = 2.0


OOM_MESSAGE = "out of memory — the session was restarted, variables were lost, files kept"
"""The whole sentence the model and the user see after the session's memory cgroup killed it."""


class KernelGone(Exception):
    """The executor stopped before finishing the cell; `reason` is a sentence for the user."""

    def __init__(
        self, reason: str, output: str = "", oom: bool = False, streams: tuple[str, str] = ("", "")
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output
        self.oom = oom
        self.stdout, self.stderr = streams


OutputCallback = Callable[[str, str], Awaitable[None]]
"""Told each piece of a running cell's output as it is written: (stream "stdout"|"stderr", text)."""


@dataclass(slots=True)
class Reply:
    status: str  # "ok" | "error"
    output: str
    """stdout and stderr together, in the order they were read."""
    output_bytes: int
    traceback: str | None
    images: list[bytes] = field(default_factory=list)
    interrupted: bool = False
    """Interrupted at the deadline."""
    stopped: bool = False
    """Interrupted on request (interrupt())."""
    stdout: str = ""
    stderr: str = ""
    error_name: str | None = None
    error_value: str | None = None


class Kernel:
    """The protocol over `reader`/`writer`, diagnostics on `errors`; `proc` is the sandbox's outermost
    process (the kill path spares it so it reaps its namespace's pid 1). Started either as that
    process's own stdio (Kernel.start) or on pipes a forked kernel holds (forkserver.py); then
    the kernel's parent (set_waiter) is spared too, reaps it and sends its exit status as a frame."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.StreamReader],
        max_images: int,
        kill_tree: Callable[[tuple[int, ...]], Awaitable[bool]],
        transports: tuple[asyncio.BaseTransport, ...] = (),
        *,
        output_limit: int,
    ) -> None:
        self._proc = proc
        self._reader, self._writer, self._errors = streams
        self._transports = transports  # pipes of our own, closed with the kernel
        self._decoder = frames.Decoder()
        self._max_images = max_images
        # Kills the session's processes but the given pids; True after an OOM kill.
        self._kill_tree = kill_tree
        self._waiter: int | None = None  # a forked kernel's parent (set_waiter)
        # The executor caps output in bytes; this bounds what a forged frame could add (an
        # undecodable byte legitimately becomes four characters).
        self._output_chars = 4 * output_limit
        self._next_id = 0
        self._running: int | None = None
        self._stop_requested = False
        self._gone_reason: str | None = None
        self._escalation: asyncio.Task[None] | None = None
        self._killing: asyncio.Future[bool] | None = None
        self._images: list[bytes] = []
        self._output: list[tuple[str, str]] = []
        self._output_room = self._output_chars  # characters the running cell may still add
        self._exit: dict[str, Any] | None = None
        self.pid = proc.pid

    @classmethod
    async def start(
        cls,
        argv: list[str],
        *,
        max_images: int,
        output_limit: int,
        start_timeout_s: float,
        kill_tree: Callable[[tuple[int, ...]], Awaitable[bool]],
        pass_fds: tuple[int, ...] = (),
    ) -> Kernel:
        """Spawn the sandbox and wait for the executor's hello; SandboxUnavailable if it never comes."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=SPAWN_ENV,  # never the server's own environment
                limit=frames.MAX_FRAME,
                pass_fds=pass_fds,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start the sandbox ({argv[0]}): {exc.strerror}") from exc
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        kernel = cls(
            proc, (proc.stdout, proc.stdin, proc.stderr), max_images, kill_tree, output_limit=output_limit
        )
        await kernel.wait_hello(start_timeout_s)
        return kernel

    def set_waiter(self, pid: int) -> None:
        """A forked kernel's parent: spared by the kill path so that it reaps the kernel."""
        self._waiter = pid

    @property
    def _spare(self) -> tuple[int, ...]:
        return (self._proc.pid,) if self._waiter is None else (self._proc.pid, self._waiter)

    async def wait_hello(self, timeout_s: float) -> None:
        """The executor's greeting, or SandboxUnavailable (with its diagnostics) and the sandbox killed."""
        try:
            async with asyncio.timeout(timeout_s):
                hello = await self._next_frame()
        except (TimeoutError, KernelGone, ProtocolError) as exc:
            detail = await self.stderr_tail()
            await self.kill()
            raise SandboxUnavailable(f"the sandbox did not start: {detail or exc}") from exc
        except BaseException:
            await asyncio.shield(self.kill())  # cancelled: nobody else knows this sandbox exists
            raise
        if hello.get("op") != "hello" or hello.get("version") != frames.PROTOCOL_VERSION:
            await self.kill()
            raise ProtocolError(f"the executor greeted with {hello.get('op')!r} v{hello.get('version')!r}")

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None and self._exit is None

    async def run(
        self, code: str, timeout_s: float, grace_s: float, on_output: OutputCallback | None = None
    ) -> Reply:
        """Run one cell under the ladder; raises KernelGone when the session had to die."""
        self._next_id += 1
        request_id = self._next_id
        self._images = []
        self._output = []
        self._output_room = self._output_chars
        self._stop_requested = False
        try:
            await self._send({"op": "exec", "id": request_id, "code": code})
        except frames.FrameError as exc:
            raise InvalidRequest(f"the code is too large to send to the sandbox: {exc}") from exc
        self._running = request_id
        try:
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        return await self._collect(request_id, on_output)
            except asyncio.CancelledError:
                # Whoever waited (a cancelled run) is gone; the cell must not run on behind its back.
                await asyncio.shield(self._abandon(request_id, grace_s))
                raise
            await self._send({"op": "interrupt", "id": request_id})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    reply = await self._collect(request_id, on_output)
                    reply.interrupted = True
                    return reply
            if await self.kill():
                raise KernelGone(OOM_MESSAGE, self._joined(), True, self._streams())
            raise KernelGone(
                f"The session was killed: the cell ran past {timeout_s:g} s and did not stop within "
                f"{grace_s:g} s of an interrupt; variables were lost, files in /mnt/data were kept.",
                self._joined(),
                streams=self._streams(),
            )
        finally:
            self._running = None

    async def interrupt(self, grace_s: float) -> bool:
        """Stop the running cell as a KeyboardInterrupt (its Reply says stopped); a cell still running
        grace_s later is ended by killing the session. False when no cell was running."""
        request_id = self._running
        if request_id is None:
            return False
        self._stop_requested = True
        with contextlib.suppress(KernelGone, OSError):
            await self._send({"op": "interrupt", "id": request_id})
        self._escalation = asyncio.create_task(self._kill_if_still_running(request_id, grace_s))
        return True

    async def _kill_if_still_running(self, request_id: int, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        if self._running == request_id and self.alive:
            self._gone_reason = (
                f"The session was killed: the cell did not stop within {grace_s:g} s of an interrupt; "
                "variables were lost, files in /mnt/data were kept."
            )
            await self.kill()

    async def _abandon(self, request_id: int, grace_s: float) -> None:
        """Interrupt a cell nobody waits for any more; kill the session if it won't stop."""
        with contextlib.suppress(TimeoutError, KernelGone, ProtocolError, OSError):
            await self._send({"op": "interrupt", "id": request_id})
            async with asyncio.timeout(grace_s):
                await self._collect(request_id)
                return
        if self.alive:
            await self.kill()

    async def ping(self, timeout_s: float = 5.0) -> bool:
        """Liveness as an answer over the pipe, not a pid check (only between cells)."""
        self._next_id += 1
        try:
            await self._send({"op": "ping", "id": self._next_id})
            async with asyncio.timeout(timeout_s):
                while True:
                    frame = await self._next_frame()
                    if frame.get("op") == "pong" and frame.get("id") == self._next_id:
                        return True
        except (TimeoutError, KernelGone, ProtocolError):
            return False

    async def kill(self) -> bool:
        """Kill every process of the session and reap ours; True when an OOM kill had happened.

        One kill, however many ask: a caller returns only once it is over. An interrupt's
        escalation may still be killing when the next cell restarts the session, and that kill,
        running on beside the new kernel's start, killed the new sandbox in the session's cgroup.
        """
        if self._killing is None:
            self._killing = asyncio.ensure_future(self._kill_once())
        return await asyncio.shield(self._killing)

    async def _kill_once(self) -> bool:
        oom = await self._kill_tree(self._spare)
        # The outer bwrap now reaps the namespace's pid 1 and exits; only if it does not, shoot it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REAP_WAIT_S):
                await self._proc.wait()
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.wait()
        if self._waiter is not None:
            # pid 1 exited only once the kernel was reaped, so its parent has done its job: the
            # session's processes end here, all of them, not a moment later.
            oom = await self._kill_tree(()) or oom
        self._writer.close()
        for transport in self._transports:
            transport.close()
        return oom

    async def _collect(self, request_id: int, on_output: OutputCallback | None = None) -> Reply:
        while True:
            frame = await self._next_frame()
            if frame.get("id") != request_id:
                continue  # late frames of an earlier, interrupted cell
            op = frame["op"]
            if op == "output":
                await self._take_output(frame, on_output)
            elif op == "image":
                self._take_image(frame)
            elif op == "end":
                return await self._finish(frame)

    async def _take_output(self, frame: dict[str, Any], on_output: OutputCallback | None) -> None:
        stream, text = frame.get("stream"), _text(frame.get("text"))
        room = self._output_room
        if stream not in ("stdout", "stderr") or not text or room <= 0:
            return
        text = text[:room]
        self._output_room -= len(text)
        self._output.append((stream, text))
        if on_output is not None:
            await on_output(stream, text)

    def _streams(self) -> tuple[str, str]:
        return self._joined("stdout"), self._joined("stderr")

    def _joined(self, stream: str | None = None) -> str:
        return "".join(text for name, text in self._output if stream is None or name == stream)

    async def _finish(self, frame: dict[str, Any]) -> Reply:
        status = frame.get("status")
        output = self._joined()
        output_bytes = frame.get("output_bytes")
        if not isinstance(output_bytes, int) or output_bytes < 0:
            output_bytes = len(output.encode())
        tb = frame.get("traceback")
        if status == "exited":
            code = frame.get("exit_code")
            await self.kill()
            raise KernelGone(
                f"The kernel exited (status {code if isinstance(code, int) else '?'}); "
                "variables were lost, files in /mnt/data were kept.",
                output,
                streams=self._streams(),
            )
        if status not in ("ok", "error"):
            raise ProtocolError(f"end frame with status {status!r}")
        error, value = frame.get("error"), frame.get("error_value")
        return Reply(
            status,
            output,
            output_bytes,
            tb if isinstance(tb, str) else None,
            self._images,
            stopped=self._stop_requested and error == "KeyboardInterrupt",
            stdout=self._joined("stdout"),
            stderr=self._joined("stderr"),
            error_name=error if isinstance(error, str) else None,
            error_value=value if isinstance(value, str) else None,
        )

    def _take_image(self, frame: dict[str, Any]) -> None:
        if len(self._images) >= self._max_images or not isinstance(frame.get("png"), str):
            return
        try:
            png = base64.b64decode(frame["png"], validate=True)
        except (binascii.Error, ValueError):
            return
        if png.startswith(PNG_MAGIC):
            self._images.append(png)

    async def _send(self, obj: dict[str, Any]) -> None:
        data = frames.encode(obj)
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise await self._gone() from exc

    async def _next_frame(self) -> dict[str, Any]:
        try:
            frame = await self._read_frame()
        except frames.FrameError as exc:
            await self.kill()
            raise ProtocolError(f"the executor broke the frame protocol: {exc}") from exc
        if frame is None or frame.get("op") == "exit":
            self._exit = frame  # a forked kernel's end, told by the process that waited for it
            raise await self._gone()
        return frame

    async def _read_frame(self) -> dict[str, Any] | None:
        """The next frame, None at the end of the stream; FrameError for a broken one."""
        while (frame := self._decoder.next_frame()) is None:
            data = await self._reader.read(READ_CHUNK)  # cancellation-safe: nothing is consumed half-way
            if not data:
                return None
            self._decoder.feed(data)
        return frame

    async def _gone(self) -> KernelGone:
        code = await self._exit_code()
        if await self.kill():
            return KernelGone(OOM_MESSAGE, self._joined(), True, self._streams())
        if self._gone_reason is not None:
            return KernelGone(self._gone_reason, self._joined(), streams=self._streams())
        if code is not None and code > 128:  # bwrap reports a child killed by signal N as 128+N
            why = f"the kernel died of {_signal_name(code - 128)}"
        elif code is not None and code < 0:
            why = f"the kernel died of {_signal_name(-code)}"
        else:
            why = f"the kernel exited (status {code})"
        return KernelGone(
            f"The session was killed: {why}; variables were lost, files in /mnt/data were kept.",
            self._joined(),
            streams=self._streams(),
        )

    async def _exit_code(self) -> int | None:
        """The kernel's exit status, in bwrap's convention (128+N for signal N); None if unknown."""
        if self._waiter is not None:  # forked: the stub lives on; the waiter reports, then closes the pipe
            with contextlib.suppress(TimeoutError, frames.FrameError):
                async with asyncio.timeout(1.0):
                    while self._exit is None and (frame := await self._read_frame()) is not None:
                        if frame.get("op") == "exit":
                            self._exit = frame
            exit_frame = self._exit or {}
            number = exit_frame.get("signal")
            if isinstance(number, int):
                return 128 + number
            code = exit_frame.get("code")
            return code if isinstance(code, int) else None
        # Let it finish dying on its own first, so the exit status is the real one, not our SIGKILL.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._proc.wait()
        return self._proc.returncode

    async def stderr_tail(self) -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                data = await self._errors.read(STDERR_KEEP)
                return data.decode("utf-8", "replace").strip()
        return ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
