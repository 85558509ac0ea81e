"""The server's side of the template (inside/forkserver.py): start it, have it fork kernels, stop it.

A bubblewrap session's kernel, strong mode:

    bwrap (as today: namespaces, mounts, uid map, seccomp) ──▶ stub: `echo ready; exec sleep infinity`
    server ── "ready" read ──▶ template ── fork ──▶ a child joins the stub's namespaces ──▶ kernel

so a start costs one bwrap and one fork instead of a Python start and the imports of numpy, pandas
and matplotlib, and every session shares the template's pages of those libraries copy-on-write.
The kernel talks on pipes the server made; the stub is the outermost process of the session as
bwrap's executor was, so the kill path (freeze the cgroup, SIGKILL every pid but bwrap) is unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from agentbox.errors import SandboxUnavailable
from agentbox.sandbox import seccomp
from agentbox.sandbox.backend import ENV, EXECUTOR, Launch, LaunchSpec, hard_rlimits
from agentbox.sandbox.inside import frames
from agentbox.sandbox.kernel import SPAWN_ENV, Kernel

log = logging.getLogger(__name__)

INSIDE_DIR = Path(__file__).resolve().parent / "inside"
STUB = ("/bin/sh", "-c", "echo ready && exec sleep infinity")
TEMPLATE_CAPABILITIES = "-all,+sys_admin,+sys_chroot,+sys_ptrace,+setuid,+setgid,+dac_override"
"""All the template keeps of root: setns and chroot into a stub's sandbox (sys_admin, sys_chroot), open
the namespaces of a process of another uid (sys_ptrace), join the session's cgroup (dac_override on the
root-owned cgroup.procs), and take the session's uid (setuid, setgid). No net_admin, sys_module,
sys_rawio, mknod, kill, chown or file-owner override."""
"""What bwrap runs for a forked kernel: holds the namespaces the kernel joins, says when they are built."""
REPLY_MAX = 4096
STOP_WAIT_S = 5.0

# $1 runtime  $2 inside, then the environment and the command for `env -i`. The runtime and the
# template's code must sit at their in-sandbox paths, so that what it imported is found from inside.
# The mounts need root; the command then drops to the template's own uid (setpriv).
WRAPPER = r"""
set -eu
runtime="$1"; inside="$2"; shift 2
[ -d /opt ] || mkdir /opt
mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev agentbox-template /opt
mkdir -p /opt/agentbox/runtime /opt/agentbox/inside
mount --bind "$runtime" /opt/agentbox/runtime
mount --bind "$inside" /opt/agentbox/inside
mount -t tmpfs -o size=64m,mode=1777,nosuid,nodev agentbox-template-tmp /tmp
exec env -i "$@"
"""


class ForkServer:
    def __init__(self, runtime_dir: Path, start_timeout_s: float, uid: int) -> None:
        self._runtime_dir = runtime_dir
        self._uid = uid
        self._start_timeout_s = start_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()
        arch = seccomp.host_arch()
        self._seccomp = base64.b64encode(seccomp.bpf(arch)).decode() if arch else ""
        self.pid: int | None = None
        """The template's pid (its memory is shared by every forked session; bench reports it)."""

    async def start(self) -> None:
        """Start the template and wait until it has imported everything; SandboxUnavailable if it can't."""
        async with self._lock:
            await self._start()

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = [f"{key}={value}" for key, value in ENV.items()]
        caps = TEMPLATE_CAPABILITIES
        argv = [
            "unshare", "--mount", "--propagation", "slave", "--",
            "/bin/sh", "-c", WRAPPER, "agentbox-template", str(self._runtime_dir), str(INSIDE_DIR),
            *env,
            "/usr/bin/setpriv", "--reuid", str(self._uid), "--regid", str(self._uid), "--clear-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}", "--",
            *EXECUTOR[:-1], "/opt/agentbox/inside/forkserver.py", str(theirs.fileno()),
        ]  # fmt: skip
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                env=SPAWN_ENV,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise SandboxUnavailable(f"cannot start the template process: {exc.strerror}") from exc
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        try:
            async with asyncio.timeout(self._start_timeout_s):
                hello = await self._receive()
        except (TimeoutError, SandboxUnavailable) as exc:
            await self._stop()
            raise SandboxUnavailable(f"the template process did not start: {exc}") from exc
        pid = hello.get("pid")
        self.pid = pid if isinstance(pid, int) else None

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()

    async def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the template exits when its end reads EOF
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                await proc.wait()
                return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    async def _receive(self) -> dict[str, Any]:
        assert self._sock is not None
        data = await asyncio.get_running_loop().sock_recv(self._sock, REPLY_MAX)
        if not data:
            raise SandboxUnavailable("the template process exited")
        reply: dict[str, Any] = json.loads(data)
        return reply

    async def _fork(self, request: dict[str, Any], fds: list[int]) -> int:
        """Have the template fork a kernel into the stub's sandbox; the pid of the kernel's parent.
        Restarts the template once if it had died."""
        message = json.dumps(request).encode()
        async with self._lock:
            for attempt in (1, 2):
                if self._sock is None or (self._proc is not None and self._proc.returncode is not None):
                    await self._stop()
                    await self._start()
                assert self._sock is not None
                try:
                    socket.send_fds(self._sock, [message], fds)
                    reply = await self._receive()
                except (OSError, ValueError, SandboxUnavailable) as exc:
                    log.warning("the template process failed (%s); restarting it", exc)
                    await self._stop()
                    if attempt == 2:
                        raise SandboxUnavailable(f"the template process failed: {exc}") from exc
                    continue
                except BaseException:
                    # Timed out or cancelled between request and reply: a late reply would be read
                    # as the answer to the next request, so this template is done.
                    await asyncio.shield(self._stop())
                    raise
                if "error" in reply:
                    raise SandboxUnavailable(f"the template could not fork a kernel: {reply['error']}")
                pid = reply.get("pid")
                if not isinstance(pid, int):
                    raise SandboxUnavailable(f"the template answered {reply!r}")
                return pid
        raise AssertionError("unreachable")

    async def start_kernel(
        self,
        spec: LaunchSpec,
        launch: Launch,
        *,
        start_timeout_s: float,
        kill_tree: Callable[[tuple[int, ...]], Awaitable[bool]],
    ) -> Kernel:
        """Start bwrap with the stub, then a forked kernel inside it; SandboxUnavailable on failure."""
        loop = asyncio.get_running_loop()
        (in_r, in_w), (out_r, out_w), (err_r, err_w), (ready_r, ready_w) = (os.pipe() for _ in range(4))
        theirs = [in_r, out_w, err_w]  # the kernel's ends, handed to the template
        ours: list[asyncio.BaseTransport] = []
        unowned = {in_r, in_w, out_r, out_w, err_r, err_w, ready_r, ready_w}  # fds no transport closes
        try:
            reader = asyncio.StreamReader(limit=frames.MAX_FRAME)
            errors = asyncio.StreamReader()
            ready = asyncio.StreamReader()
            for fd, stream in ((out_r, reader), (err_r, errors), (ready_r, ready)):
                unowned.discard(fd)
                read_transport, _ = await loop.connect_read_pipe(
                    partial(asyncio.StreamReaderProtocol, stream), os.fdopen(fd, "rb", 0)
                )
                ours.append(read_transport)
            unowned.discard(in_w)
            in_transport, in_protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(in_w, "wb", 0)
            )
            ours.append(in_transport)
            proc = await asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=ready_w,
                stderr=err_w,
                start_new_session=True,
                env=SPAWN_ENV,
                pass_fds=launch.pass_fds,
            )
        except BaseException as exc:
            for made in ours:
                made.close()
            for fd in unowned:
                os.close(fd)
            if isinstance(exc, OSError):
                raise SandboxUnavailable(
                    f"cannot start the sandbox ({launch.argv[0]}): {exc.strerror}"
                ) from exc
            raise
        os.close(ready_w)
        writer = asyncio.StreamWriter(in_transport, in_protocol, None, loop)
        kernel = Kernel(
            proc,
            (reader, writer, errors),
            spec.max_images,
            kill_tree,
            tuple(ours),
            output_limit=spec.output_limit,
        )
        try:
            async with asyncio.timeout(start_timeout_s):
                if await ready.readline() != b"ready\n":
                    raise SandboxUnavailable("bwrap did not start the stub")
                stub = await asyncio.to_thread(_grandchild, proc.pid)
                waiter = await self._fork(
                    {
                        "stub": stub,
                        "uid": spec.uid,
                        "cgroup_procs": list(spec.cgroup_procs),
                        "rlimits": hard_rlimits(spec),
                        "seccomp": self._seccomp,
                        "output_limit": spec.output_limit,
                        "max_images": spec.max_images,
                    },
                    theirs,
                )
        except BaseException as exc:
            failed = isinstance(exc, (TimeoutError, SandboxUnavailable, OSError))
            detail = await kernel.stderr_tail() if failed else ""
            await asyncio.shield(kernel.kill())
            if failed:
                raise SandboxUnavailable(
                    f"the sandbox did not start: {detail or exc or 'timed out'}"
                ) from exc
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        kernel.set_waiter(waiter)
        await kernel.wait_hello(start_timeout_s)
        return kernel


def _grandchild(pid: int) -> int:
    """bwrap's command, two levels down: outer bwrap → its pid-1 reaper → the stub."""
    for _ in range(2):
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        if len(children) != 1:
            raise SandboxUnavailable(f"expected one child of process {pid}, found {len(children)}")
        pid = int(children[0])
    return pid
