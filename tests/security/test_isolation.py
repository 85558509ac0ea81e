"""Isolation promises of spec/sandbox.md §2 (N, S, P, L4/L5, R14-R17), once per backend.

Network checks never send a packet anywhere but loopback: a UDP connect only asks for a route.
Names carry the catalogue id. Where gVisor's observable answer differs (it ignores the errno of
an OCI seccomp rule, so every denial is EPERM), the test says so.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat

import pytest

from agentbox.sandbox import ExecutionStatus
from tests.sandbox_fixtures import Harness

pytestmark = pytest.mark.slow

SYSCALL = (
    "import ctypes, errno\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "def sc(nr, *args):\n"
    "    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])\n"
    "    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), '?')\n"
)
DENIED_SOCKET = ("EAFNOSUPPORT", "EPERM")  # bwrap's BPF says EAFNOSUPPORT; gVisor's OCI filter EPERM


def lines(result: object) -> list[str]:
    logs: str = result.logs  # type: ignore[attr-defined]
    return logs.splitlines()


def test_l4_state_persists_across_cells(sandbox: Harness) -> None:
    assert sandbox.run("x = 41").status is ExecutionStatus.OK
    result = sandbox.run("x + 1")
    assert result.status is ExecutionStatus.OK
    assert result.logs.strip() == "42"


def test_l5_sessions_do_not_see_each_others_variables_files_or_processes(sandbox: Harness) -> None:
    sandbox.run(
        "import subprocess\nsecret_a = 'canary-a'\nopen('/mnt/data/a.txt', 'w').write('canary-a')\n"
        "p = subprocess.Popen(['/bin/sleep', '987.654'])",
        key="iso_a",
    )
    result = sandbox.run(
        "import os\n"
        "cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]\n"
        "print('secret_a' in globals(), sorted(os.listdir('/mnt/data')), any(b'987.654' in c for c in cmds))",
        key="iso_b",
    )
    assert result.logs.strip() == "False [] False"


def test_n1_udp_connect_to_the_outside_has_no_route(sandbox: Harness) -> None:
    code = (
        "import errno, socket\n"
        "try:\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    s.connect(('192.0.2.1', 9))\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))\n"
        "routes = open('/proc/net/route').read().splitlines()[1:]\n"
        "print('default' if any(r.split()[1] == '00000000' for r in routes if r.split()) else 'no-default')\n"
    )
    out = lines(sandbox.run(code))
    assert out[0] in DENIED_SOCKET
    assert out[1] == "['lo']"
    assert out[2] == "no-default"


def test_n2_dns_has_no_resolver(sandbox: Harness) -> None:
    code = "import os\nprint(os.path.exists('/etc/resolv.conf'))\nprint(open('/etc/hosts').read().split())\n"
    out = lines(sandbox.run(code))
    assert out[0] == "False"  # nothing to ask; a lookup would also need N1's missing route
    assert out[1] == "['127.0.0.1', 'localhost', 'sandbox', '::1', 'localhost']"


def test_n3_ipv6_egress_has_no_route(sandbox: Harness) -> None:
    code = (
        "import errno, socket\n"
        "try:\n"
        "    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).connect(('2001:db8::1', 9))\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    assert sandbox.run(code).logs.strip() in DENIED_SOCKET


@pytest.mark.parametrize("family", ["AF_PACKET", "AF_NETLINK", "AF_INET_RAW"])
def test_n4_raw_packet_and_netlink_sockets_are_refused(sandbox: Harness, family: str) -> None:
    make = {
        "AF_PACKET": "socket.socket(socket.AF_PACKET, socket.SOCK_RAW)",
        "AF_NETLINK": "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)",
        "AF_INET_RAW": "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
    }[family]
    code = (
        f"import errno, socket\ntry:\n    {make}\n    print('ok')\n"
        "except OSError as e:\n    print(errno.errorcode[e.errno])"
    )
    assert sandbox.run(code).logs.strip() in DENIED_SOCKET


def test_n5_server_loopback_port_is_unreachable(sandbox: Harness) -> None:
    async def scenario() -> str:
        hits: list[int] = []

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hits.append(1)
            writer.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused')\n"
        )
        async with server:
            result = await sandbox.manager.execute("thread_a", code)
        assert not hits
        return result.logs.strip()

    assert sandbox.call(scenario()) == "refused"


def test_n6_host_abstract_unix_socket_is_unreachable(sandbox: Harness) -> None:
    import socket

    name = b"\0agentbox-canary-" + os.urandom(4).hex().encode()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen()
    try:
        code = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "try:\n"
            f"    s.connect({name!r})\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused')\n"
        )
        assert sandbox.run(code).logs.strip() == "refused"
    finally:
        listener.close()


def test_n7_host_unix_socket_paths_are_not_mounted(sandbox: Harness) -> None:
    code = (
        "import os\n"
        "print([p for p in ('/run', '/var/run', '/run/dbus/system_bus_socket', '/tmp/.X11-unix',"
        " '/var/lib') if os.path.exists(p)])"
    )
    assert sandbox.run(code).logs.strip() == "[]"


def test_s1_env_is_the_allowlist_and_server_secrets_do_not_leak(
    sandbox: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBOX_CANARY", "canary-env-7f3a")
    code = "import os\nprint(sorted(os.environ))\n"
    names = sandbox.run(code, key="env_fresh").logs.strip()  # a kernel started after the canary was set
    allowed = {"HOME", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "PATH", "PWD", "XDG_CACHE_HOME"}
    assert set(eval(names)) <= allowed


def test_s2_proc_environ_and_cmdlines_show_no_server_secret(
    sandbox: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBOX_CANARY", "canary-env-7f3a")
    code = (
        "import os\n"
        "blob = b''\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        for f in ('environ', 'cmdline'):\n"
        "            try:\n"
        "                blob += open(f'/proc/{p}/{f}', 'rb').read()\n"
        "            except OSError:\n"
        "                pass\n"
        "print(b'canary-env-7f3a' in blob, b'AGENTBOX' in blob)\n"
    )
    assert sandbox.run(code, key="env_fresh2").logs.strip() == "False False"


def test_s3_mountinfo_shows_no_host_session_paths(sandbox: Harness) -> None:
    result = sandbox.run("print(open('/proc/self/mountinfo').read())")
    assert str(sandbox.config.sessions_dir) not in result.logs
    assert str(sandbox.data_dir("thread_a")) not in result.logs
    assert " /mnt/data " in result.logs


def test_s4_s5_host_secrets_and_other_paths_are_absent(sandbox: Harness) -> None:
    paths = [
        "/etc/shadow", "/root", "/home", "/var", str(sandbox.config.sessions_dir),
        str(sandbox.config.runtime_dir.parent / "pyproject.toml"), "/etc/ssh", "/boot",
    ]  # fmt: skip
    code = f"import os\nprint([p for p in {paths!r} if os.path.exists(p)])"
    assert sandbox.run(code).logs.strip() == "[]"


def test_s6_few_pids_no_cgroupfs_no_keyring_no_dmesg(sandbox: Harness) -> None:
    code = (
        SYSCALL + "import os\n"
        "print(len([p for p in os.listdir('/proc') if p.isdigit()]) <= 3)\n"
        "print(os.path.exists('/sys/fs/cgroup/memory'))\n"
        "print(sc(250, 0, -3, 0))\n"  # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING)
        "try:\n    open('/dev/kmsg').read(1); print('dmesg')\nexcept OSError as e:\n    print('no-dmesg')\n"
    )
    assert lines(sandbox.run(code)) == ["True", "False", "EPERM", "no-dmesg"]


def test_p1_ptrace_attach_to_pid1_is_refused_and_the_session_ends_normally(sandbox: Harness) -> None:
    code = SYSCALL + "print(sc(101, 16, 1, 0, 0))"  # PTRACE_ATTACH to the namespace's pid 1
    assert sandbox.run(code, key="ptrace").logs.strip() == "EPERM"
    assert sandbox.run("1 + 1", key="ptrace").logs.strip() == "2"
    sandbox.call(sandbox.manager.close("ptrace"))  # would hang for ever if pid 1 were stopped


def test_p2_kill_everything_inside_leaves_the_server_and_other_sessions_alone(sandbox: Harness) -> None:
    sandbox.run("y = 'other session'", key="bystander")
    result = sandbox.run(
        "import os, signal\n"
        "for target in (-1, 1, os.getppid()):\n"
        "    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass\n"
        "print('alive')",
        key="killer",
    )
    assert result.status in (ExecutionStatus.OK, ExecutionStatus.KILLED)
    assert sandbox.run("y", key="bystander").logs.strip() == "'other session'"
    assert sandbox.run("print('next')", key="killer").logs.strip() == "next"


def test_p3_hard_rlimits_cannot_be_raised(sandbox: Harness) -> None:
    code = (
        "import resource\n"
        "for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE):\n"
        "    soft, hard = resource.getrlimit(r)\n"
        "    try:\n"
        "        resource.setrlimit(r, (hard + 1, hard + 1)); print('raised')\n"
        "    except (ValueError, OSError):\n"
        "        print('refused')\n"
    )
    assert lines(sandbox.run(code)) == ["refused"] * 3


@pytest.mark.parametrize(
    ("name", "call", "expected"),
    [
        ("unshare_newuser", "sc(272, 0x10000000)", "EPERM"),
        ("unshare_newns", "sc(272, 0x00020000)", "EPERM"),
        ("setns", "sc(308, 0, 0)", "EPERM"),
        ("mount", "sc(165, 0, 0, 0, 0, 0)", "EPERM"),
        ("umount2", "sc(166, 0, 0)", "EPERM"),
        ("chroot", "sc(161, 0)", "EPERM"),
        ("pivot_root", "sc(155, 0, 0)", "EPERM"),
        ("clone_newuser", "sc(56, 0x10000000 | 17, 0, 0, 0, 0)", "EPERM"),
        ("clone3", "sc(435, 0, 0)", "ENOSYS"),
    ],
)
def test_p4_namespace_and_mount_syscalls_are_refused(
    sandbox: Harness, name: str, call: str, expected: str
) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers in this test are x86_64's")
    assert sandbox.run(SYSCALL + f"print({call})").logs.strip() == expected


def test_p5_no_new_privileges_no_capabilities_uid_unchanged(sandbox: Harness) -> None:
    code = (
        "import ctypes, os\n"
        "print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))\n"  # PR_GET_NO_NEW_PRIVS
        "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)\n"
        "print(status['CapEff'].strip(), status['CapBnd'].strip())\n"
        "try:\n    os.setuid(0); print('root')\nexcept OSError:\n    print('refused')\n"
        "print(os.getuid() != 0)\n"
    )
    assert lines(sandbox.run(code)) == ["1", "0000000000000000 0000000000000000", "refused", "True"]


def test_runs_as_an_unprivileged_uid_inside_and_on_the_host(sandbox: Harness) -> None:
    result = sandbox.run("import os; print(os.getuid(), os.getgid(), os.geteuid())")
    host_uid = sandbox.session_uid("thread_a")
    inside = 1000 if sandbox.backend == "bubblewrap" else host_uid  # gVisor maps no uids
    assert result.logs.strip() == f"{inside} {inside} {inside}"
    assert host_uid != 0
    if sandbox.backend == "bubblewrap":
        for pid in sandbox.session_pids("thread_a"):
            with open(f"/proc/{pid}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            assert {int(u) for u in uids} == {host_uid}


@pytest.mark.cgroup_v2
def test_every_session_process_stays_in_the_session_cgroup(sandbox: Harness) -> None:
    sandbox.run("import subprocess\nq = subprocess.Popen(['/bin/sleep', '30'])", key="cg")
    pids = set(sandbox.session_pids("cg"))
    assert pids
    for procs in sandbox.cgroup_pid_files("cg"):  # v1: one per controller; v2: one
        assert set(map(int, procs.read_text().split())) == pids, procs
    sandbox.call(sandbox.manager.close("cg"))


@pytest.mark.parametrize(
    "path", ["/usr/evil", "/evil", "/etc/evil", "/opt/agentbox/runtime/evil", "/etc/passwd"]
)
def test_p6_system_paths_are_read_only(sandbox: Harness, path: str) -> None:
    code = f"try:\n    open({path!r}, 'a')\n    print('written')\nexcept OSError as e:\n    print(e.errno)"
    assert int(sandbox.run(code).logs.strip()) in (errno.EROFS, errno.EACCES, errno.EPERM)


def test_p7_no_device_nodes_can_be_made_and_no_dangerous_devices(sandbox: Harness) -> None:
    code = (
        "import os, stat\n"
        "try:\n"
        "    os.mknod('/tmp/mem', stat.S_IFCHR | 0o600, os.makedev(1, 1))\n"
        "    open('/tmp/mem', 'rb').read(1)\n"
        "    print('read /dev/mem')\n"
        "except OSError as e:\n"
        "    print('refused')\n"
        "devs = ('/dev/mem', '/dev/kvm', '/dev/sda', '/dev/kmsg', '/dev/port')\n"
        "print([d for d in devs if os.path.exists(d)])\n"
    )
    assert lines(sandbox.run(code)) == ["refused", "[]"]


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("bpf", "sc(321, 0, 0, 0)"),
        ("userfaultfd", "sc(323, 0)"),
        ("io_uring_setup", "sc(425, 1, 0)"),
        ("perf_event_open", "sc(298, 0, 0, -1, -1, 0)"),
        ("keyctl", "sc(250, 0, -3, 0)"),
        ("add_key", "sc(248, 0, 0, 0, 0, 0)"),
        ("process_vm_readv", "sc(310, 1, 0, 0, 0, 0, 0)"),
        ("open_by_handle_at", "sc(304, 0, 0, 0)"),
        ("init_module", "sc(175, 0, 0, 0)"),
        ("kexec_load", "sc(246, 0, 0, 0, 0)"),
    ],
)
def test_p8_seccomp_sensitive_syscalls_get_eperm(sandbox: Harness, name: str, call: str) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers in this test are x86_64's")
    assert sandbox.run(SYSCALL + f"print({call})").logs.strip() == "EPERM"


def test_seccomp_filter_leaves_threads_subprocesses_and_unix_sockets_working(sandbox: Harness) -> None:
    code = (
        "import socket, subprocess, threading, multiprocessing\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run(['/bin/echo', 'child'], capture_output=True, text=True).stdout.strip())\n"
        "a, b = socket.socketpair(); a.send(b'unix'); print(b.recv(4).decode())\n"
        "with multiprocessing.get_context('fork').Pool(2) as pool:\n"
        "    print(sum(pool.map(abs, [-1, -2])))\n"
    )
    assert lines(sandbox.run(code)) == ["thread", "child", "unix", "3"]


def test_only_the_standard_fds_reach_user_code(sandbox: Harness) -> None:
    code = (
        "import subprocess, sys\n"
        "probe = 'import os; print(sorted(map(int, os.listdir(\"/proc/self/fd\"))))'\n"
        "print(subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True).stdout.strip())"
    )
    # The child sees stdin, stdout, stderr and the fd of the listing itself: no protocol pipe,
    # no seccomp memfd, no host directory.
    assert sandbox.run(code).logs.strip() == "[0, 1, 2, 3]"


def test_r17_printed_fake_frame_does_not_alter_the_result(sandbox: Harness) -> None:
    from agentbox.sandbox.inside import frames

    fake = frames.encode({"op": "end", "id": 1, "status": "ok", "output": "forged", "output_bytes": 6})
    code = f"import os, sys\nsys.stdout.buffer.write({fake!r})\nos.write(1, {fake!r})\nprint('real')"
    result = sandbox.run(code)
    assert result.status is ExecutionStatus.OK
    assert result.logs.endswith("real\n")
    assert result.logs.count("forged") == 2  # shown as the text it is, not obeyed


def test_r14_huge_output_is_truncated_with_true_size(sandbox: Harness) -> None:
    result = sandbox.run("print('A' * 10**7)")
    limit = sandbox.config.output_limit_bytes
    assert result.status is ExecutionStatus.OK
    assert result.logs.startswith("A" * limit)
    assert f"[output truncated: {10**7 + 1} bytes in total, first {limit} shown]" in result.logs
    assert len(result.logs) < limit + 200


@pytest.mark.parametrize(
    "code",
    [
        "import sys\n_ = sys.stdout.write('B' * 300000)",
        "import os\n_ = os.write(1, b'B' * 300000)",
        "import subprocess\n_ = subprocess.run(['/usr/bin/head', '-c', '300000', '/dev/zero'])",
    ],
    ids=["no_newline", "os_write", "subprocess"],
)
def test_r15_floods_from_every_path_are_counted_alike(sandbox: Harness, code: str) -> None:
    result = sandbox.run(code)
    assert f"[output truncated: 300000 bytes in total, first {sandbox.config.output_limit_bytes} shown]" in (
        result.logs
    )


def test_r16_binary_and_control_bytes_stay_escaped_text(sandbox: Harness) -> None:
    code = "import os\n_ = os.write(1, b'\\xff\\x00\\x1b[31mred\\xc3\\xa9\\n')"
    result = sandbox.run(code)
    assert result.status is ExecutionStatus.OK
    assert result.logs == "\\xff\x00\x1b[31mredé\n"


def test_r18_giant_repr_as_last_expression_is_capped(sandbox: Harness) -> None:
    result = sandbox.run("list(range(10**6))")
    assert result.status is ExecutionStatus.OK
    assert "[repr truncated: " in result.logs
    assert len(result.logs) < 25_000


def test_r18_many_figures_are_capped(sandbox: Harness) -> None:
    # Tiny figures without axes: the cap is under test, not plotting speed (30 plotted figures took
    # all of the 10 s cell limit under gVisor at half a CPU on a slow day).
    code = "import matplotlib.pyplot as plt\nfor _ in range(30):\n    plt.figure(figsize=(1, 1), dpi=10)\n"
    code += "plt.show()"
    result = sandbox.run(code)
    assert result.status is ExecutionStatus.OK, result.logs
    assert len(result.images) == sandbox.config.max_images_per_cell


def test_fd_level_output_is_captured_per_stream_in_order(sandbox: Harness) -> None:
    code = (
        "import os, subprocess, sys, time\n"
        "print('one')\n"
        "os.write(1, b'two\\n')\n"
        "time.sleep(0.2)\n"  # streams are separate pipes: their relative order is the order read
        "print('three', file=sys.stderr)\n"
        "os.write(2, b'3b\\n')\n"
        "time.sleep(0.2)\n"
        "_ = subprocess.run(['/bin/echo', 'four'])\n"
        "_ = subprocess.run(['/bin/sh', '-c', 'echo five >&2'])\n"
    )
    result = sandbox.run(code)
    assert result.stdout == "one\ntwo\nfour\n"
    assert result.stderr == "three\n3b\nfive\n"
    assert result.logs.startswith("one\ntwo\nthree\n3b\n")


def test_error_shows_a_traceback_without_executor_frames(sandbox: Harness) -> None:
    result = sandbox.run("def f():\n    raise ValueError('boom')\nf()")
    assert result.status is ExecutionStatus.ERROR
    assert "ValueError: boom" in result.logs
    assert "executor.py" not in result.logs


def test_matplotlib_show_gives_a_png(sandbox: Harness) -> None:
    result = sandbox.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert result.status is ExecutionStatus.OK, result.logs
    assert len(result.images) == 1
    assert result.images[0].startswith(b"\x89PNG")


def test_files_are_owned_by_the_session_uid_on_the_host(sandbox: Harness) -> None:
    sandbox.run("open('/mnt/data/owned.txt', 'w').write('x')")
    st = os.lstat(sandbox.data_dir("thread_a") / "owned.txt")
    assert stat.S_ISREG(st.st_mode)
    assert st.st_uid == sandbox.session_uid("thread_a") != 0
