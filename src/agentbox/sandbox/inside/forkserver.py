"""The template: imports the sandbox's libraries once; each bubblewrap session's kernel is a fork of it.

Runs OUTSIDE any sandbox, started by the server (sandbox/forkserver.py) in a private mount namespace
where the runtime and this folder sit at their in-sandbox paths (/opt/agentbox/...), so every module
it imported stays importable from inside. It runs as an unprivileged uid of its own with only the
capabilities entering a sandbox takes (forkserver.TEMPLATE_CAPABILITIES), and never runs user code.
Per request (one SOCK_SEQPACKET message: JSON + the session's three pipe ends):

    template ──fork──▶ entrant   joins the session's cgroups, then the namespaces of the
                                 session's bwrap stub (cgroup, ipc, uts, net, pid, mnt) and its root
                         │──fork──▶ kernel   joins the stub's user namespace, uid/gid 1000, no
                         │                   capabilities, no new privileges, hard rlimits, the
                         │                   session's seccomp filter, checks all of that in
                         │                   /proc/self/status (else exits), runs executor.serve()
                         └ drops to the session's host uid and every capability, waits for the
                           kernel, reports its exit
                           status as an `exit` frame on the protocol pipe, exits

bwrap built the namespaces, mounts, uid map and /proc of the stub; the kernel only joins them, so
a forked kernel lives in exactly the sandbox a bwrap-started one would. Stdlib only (ctypes for the
system calls Python 3.11's os module lacks).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import gc
import importlib
import io
import json
import os
import resource
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from agentbox.sandbox.inside import executor, frames
else:
    import executor  # next to this file, as inside the sandbox; there is no agentbox package here
    import frames

MAX_REQUEST = 1 << 16
NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt")  # the user namespace is joined last, by the kernel
NS_FLAGS = {
    "cgroup": 0x02000000, "ipc": 0x08000000, "uts": 0x04000000, "net": 0x40000000,
    "pid": 0x20000000, "mnt": 0x00020000, "user": 0x10000000,
}  # fmt: skip
SANDBOX_ID = 1000
PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 22, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER = 4, 2
CAP_VERSION_3 = 0x20080522
RLIMITS = {
    "core": resource.RLIMIT_CORE, "nofile": resource.RLIMIT_NOFILE,
    "fsize": resource.RLIMIT_FSIZE, "nproc": resource.RLIMIT_NPROC,
}  # fmt: skip

libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32),
    ]  # fmt: skip


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0) -> None:
    _check(libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def _setns(fd: int, kind: str) -> None:
    _check(libc.setns(fd, NS_FLAGS[kind]), f"setns({kind})")


def warm_up() -> None:
    """Import and exercise what a first cell uses (pandas, a bar chart to PNG) so no child pays for it."""
    plt = executor.preimport()
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        return
    if plt is not None:
        frame = pandas.read_csv(io.StringIO("name,value\na,1\nb,2\n"))
        frame.plot.bar(x="name", y="value")
        plt.savefig(io.BytesIO(), format="png")
        plt.close("all")


def serve(control: socket.socket) -> None:
    cap_last = int(open("/proc/sys/kernel/cap_last_cap").read())  # noqa: SIM115 - read once, before any chroot
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the OS reaps finished entrants; we never wait
    control.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, MAX_REQUEST, 3)
        except InterruptedError:
            continue
        except ConnectionResetError:
            return  # the server is gone
        if not data:
            return  # the server is gone
        try:
            request = json.loads(data)
            if len(fds) != 3:
                raise ValueError(f"expected 3 fds, got {len(fds)}")
            pid = os.fork()
        except (ValueError, OSError) as exc:
            for fd in fds:
                os.close(fd)
            control.send(json.dumps({"error": str(exc)}).encode())
            continue
        if pid == 0:
            try:
                control.close()
                _entrant(request, fds, cap_last)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        control.send(json.dumps({"ok": True, "pid": pid}).encode())


def _entrant(request: dict[str, Any], fds: list[int], cap_last: int) -> NoReturn:
    proto_in, proto_out, err = fds
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        stub = int(request["stub"])
        host_uid = int(request["uid"])
        for path in request["cgroup_procs"]:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        ns_fds = {kind: os.open(f"/proc/{stub}/ns/{kind}", os.O_RDONLY) for kind in (*NAMESPACES, "user")}
        root = os.open(f"/proc/{stub}/root", os.O_RDONLY | os.O_DIRECTORY)
        # The stub is ours only if it sits in the cgroup we just joined (not a recycled pid).
        with open(request["cgroup_procs"][0]) as f:
            if str(stub) not in f.read().split():
                raise OSError(f"process {stub} is not in the session's cgroup")
        os.setgroups([])
        for kind in NAMESPACES:
            _setns(ns_fds[kind], kind)
        os.fchdir(root)
        os.chroot(".")
        kernel = os.fork()
    except BaseException as exc:  # every failure is a message for the server, then exit
        _report(err, f"entering the sandbox failed: {exc}")
        os._exit(71)
    if kernel == 0:
        _become_kernel(request, ns_fds["user"], proto_in, proto_out, err, cap_last)
    # Entrant: hold only the protocol pipe's write end, as the session's uid, until the kernel exits.
    for fd in (*ns_fds.values(), root, proto_in, err):
        os.close(fd)
    os.closerange(0, proto_out)
    os.closerange(proto_out + 1, os.sysconf("SC_OPEN_MAX"))
    os.setresgid(host_uid, host_uid, host_uid)
    os.setresuid(host_uid, host_uid, host_uid)
    _clear_capabilities()  # a change between two non-zero uids keeps them
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    while True:
        try:
            _, status = os.waitpid(kernel, 0)
            break
        except InterruptedError:
            continue
    frame: dict[str, Any] = {"op": "exit"}
    if os.WIFSIGNALED(status):
        frame["signal"] = os.WTERMSIG(status)
    else:
        frame["code"] = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(OSError):
        os.write(proto_out, frames.encode(frame))
    os._exit(0)


def _become_kernel(
    request: dict[str, Any], user_ns: int, proto_in: int, proto_out: int, err: int, cap_last: int
) -> NoReturn:
    report_fd = err
    try:
        os.setsid()  # bwrap's --new-session
        _setns(user_ns, "user")
        for cap in range(cap_last + 1):
            _prctl(PR_CAPBSET_DROP, cap)
        os.setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID)
        os.setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID)
        # uid 0 is unmapped in the session's user namespace, so setresuid kept the capabilities
        # setns gave us there: clear them explicitly.
        _clear_capabilities()
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        # After the uid change, which clears it: bwrap's --die-with-parent, towards the entrant.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for name, value in request["rlimits"].items():
            resource.setrlimit(RLIMITS[name], (value, value))
        for target, fd in enumerate((proto_in, proto_out, err)):
            os.dup2(fd, target)
        report_fd = 2
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir("/mnt/data")
        os.environ["PWD"] = "/mnt/data"
        bpf = ctypes.create_string_buffer(base64.b64decode(request["seccomp"]))
        program = _SockFprog(len(bpf.raw) // 8, ctypes.addressof(bpf))
        _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")
        _verify()
        _reseed()
    except BaseException as exc:
        _report(report_fd, f"entering the sandbox failed: {exc}")
        os._exit(72)
    executor.serve(int(request["output_limit"]), int(request["max_images"]))
    os._exit(0)


def _clear_capabilities() -> None:
    header, data = _CapHeader(CAP_VERSION_3, 0), (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def _verify() -> None:
    """Fail closed: refuse to run unless the kernel's credentials are exactly the sandbox's."""
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    expected = {
        "Uid": "1000\t1000\t1000\t1000", "Gid": "1000\t1000\t1000\t1000", "Groups": "",
        "CapInh": "0" * 16, "CapPrm": "0" * 16, "CapEff": "0" * 16, "CapBnd": "0" * 16, "CapAmb": "0" * 16,
        "NoNewPrivs": "1", "Seccomp": "2",
    }  # fmt: skip
    wrong = {k: status.get(k) for k, v in expected.items() if status.get(k, "").strip() != v}
    if wrong:
        raise OSError(f"credentials not as expected: {wrong}")


def _reseed() -> None:
    """Every fork starts with the template's random state: draw fresh seeds (random does so itself)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _report(fd: int, message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, message.encode("utf-8", "replace") + b"\n")


def main() -> None:
    os.chdir("/")
    warm_up()
    gc.collect()
    gc.freeze()  # the children's collections then skip (and never copy) the template's objects
    serve(socket.socket(fileno=int(sys.argv[1])))  # the server's control socket


if __name__ == "__main__":
    main()
