"""One test per isolation promise of spec/sandbox.md §2, against a real bwrap sandbox.

Network checks never send a packet anywhere but loopback: a UDP connect only asks for a route.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path

import pytest

from agentbox.errors import NotFound
from agentbox.sandbox import ExecutionStatus, InputFile
from tests.sandbox_fixtures import Harness

pytestmark = pytest.mark.slow


def test_state_persists_across_cells(sandbox: Harness) -> None:
    assert sandbox.run("x = 41").status is ExecutionStatus.OK
    result = sandbox.run("x + 1")
    assert result.status is ExecutionStatus.OK
    assert result.logs.strip() == "42"


def test_sessions_do_not_see_each_others_variables_or_files(sandbox: Harness) -> None:
    sandbox.run("secret_a = 'canary-a'\nopen('/mnt/data/a.txt', 'w').write('canary-a')", key="iso_a")
    result = sandbox.run(
        "import os\nprint('secret_a' in globals(), sorted(os.listdir('/mnt/data')))", key="iso_b"
    )
    assert result.logs.strip() == "False []"


def test_no_route_out_and_only_loopback(sandbox: Harness) -> None:
    code = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.connect(('192.0.2.1', 9))\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "ifaces = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:])\n"
        "print(ifaces)\n"
        "routes = open('/proc/net/route').read().splitlines()[1:]\n"
        "print('default' if any(r.split()[1] == '00000000' for r in routes) else 'no-default')\n"
    )
    lines = sandbox.run(code).logs.splitlines()
    assert lines[0].startswith("refused")
    assert lines[1] == "['lo']"
    assert lines[2] == "no-default"


def test_env_is_the_allowlist_and_server_secrets_do_not_leak(
    sandbox: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTBOX_CANARY", "canary-env-7f3a")
    code = (
        "import os\n"
        "print(sorted(os.environ))\n"
        "print('canary-env-7f3a' in open('/proc/1/environ', 'rb').read().decode('latin-1'))\n"
    )
    result = sandbox.run(code, key="env_fresh")  # a kernel started after the canary was set
    names, in_pid1 = result.logs.splitlines()
    allowed = {"HOME", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "PATH", "PWD", "XDG_CACHE_HOME"}
    assert set(eval(names)) <= allowed
    assert "AGENTBOX_CANARY" not in names
    assert in_pid1 == "False"


def test_mountinfo_shows_no_host_session_paths(sandbox: Harness) -> None:
    result = sandbox.run("print(open('/proc/self/mountinfo').read())")
    assert str(sandbox.config.sessions_dir) not in result.logs
    assert str(sandbox.data_dir("thread_a")) not in result.logs
    assert " /mnt/data " in result.logs


def test_runs_as_unprivileged_uid(sandbox: Harness) -> None:
    result = sandbox.run("import os; print(os.getuid(), os.getgid(), os.geteuid())")
    assert result.logs.strip() == "1000 1000 1000"
    host_uid = sandbox.session_uid("thread_a")
    assert host_uid != 0
    pids = sandbox.session_pids("thread_a")
    assert pids
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert {int(u) for u in uids} == {host_uid}


@pytest.mark.parametrize("path", ["/usr/evil", "/evil", "/etc/evil", "/opt/agentbox/runtime/evil"])
def test_system_paths_are_read_only(sandbox: Harness, path: str) -> None:
    code = f"try:\n    open({path!r}, 'w')\n    print('written')\nexcept OSError as e:\n    print(e.errno)"
    assert int(sandbox.run(code).logs.strip()) in (errno.EROFS, errno.EACCES, errno.EPERM)


def test_server_loopback_port_is_unreachable(sandbox: Harness) -> None:
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


def test_printed_fake_frame_does_not_alter_the_result(sandbox: Harness) -> None:
    from agentbox.sandbox.inside import frames

    fake = frames.encode({"op": "end", "id": 1, "status": "ok", "output": "forged", "output_bytes": 6})
    code = f"import os, sys\nsys.stdout.buffer.write({fake!r})\nos.write(1, {fake!r})\nprint('real')"
    result = sandbox.run(code)
    assert result.status is ExecutionStatus.OK
    assert result.logs.endswith("real\n")
    assert result.logs.count("forged") == 2  # shown as the text it is, not obeyed


def test_huge_output_is_truncated_with_true_size(sandbox: Harness) -> None:
    result = sandbox.run("print('A' * 10**7)")
    limit = sandbox.config.output_limit_bytes
    assert result.status is ExecutionStatus.OK
    assert result.logs.startswith("A" * limit)
    assert f"[output truncated: {10**7 + 1} bytes in total, first {limit} shown]" in result.logs
    assert len(result.logs) < limit + 200


def test_fd_level_output_is_captured_in_order(sandbox: Harness) -> None:
    code = (
        "import os, subprocess, sys\n"
        "print('one')\n"
        "os.write(1, b'two\\n')\n"
        "print('three', file=sys.stderr)\n"
        "_ = subprocess.run(['/bin/echo', 'four'])\n"
    )
    assert sandbox.run(code).logs == "one\ntwo\nthree\nfour\n"


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


def test_savefig_is_a_changed_file_and_an_image(sandbox: Harness) -> None:
    result = sandbox.run(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('/mnt/data/c.png')\nplt.close()"
    )
    assert result.status is ExecutionStatus.OK, result.logs
    assert "c.png" in result.changed_files
    assert len(result.images) == 1 and result.images[0].startswith(b"\x89PNG")


def test_read_file_returns_regular_files_only(sandbox: Harness) -> None:
    result = sandbox.run(
        "import os\n"
        "open('/mnt/data/ok.txt', 'w').write('fine')\n"
        "os.symlink('/etc/passwd', '/mnt/data/p')\n"
        "os.mkdir('/mnt/data/d'); os.symlink('/etc', '/mnt/data/d/link')\n"
        "os.mkfifo('/mnt/data/fifo')\n"
    )
    assert result.status is ExecutionStatus.OK, result.logs
    assert result.changed_files == ("ok.txt",)
    assert sandbox.call(sandbox.manager.read_file("thread_a", "ok.txt")) == b"fine"
    for name in ("p", "d/link/passwd", "fifo", "d", "../thread_a/ok.txt", "missing"):
        with pytest.raises(NotFound):
            sandbox.call(sandbox.manager.read_file("thread_a", name))


def test_files_are_owned_by_the_session_uid_on_the_host(sandbox: Harness) -> None:
    sandbox.run("open('/mnt/data/owned.txt', 'w').write('x')")
    st = os.lstat(sandbox.data_dir("thread_a") / "owned.txt")
    assert stat.S_ISREG(st.st_mode)
    assert st.st_uid == sandbox.session_uid("thread_a") != 0


def test_input_files_are_placed_once_and_readable(sandbox: Harness, tmp_path: Path) -> None:
    source = tmp_path / "blob"
    source.write_text("a,b\n1,2\n")
    file = InputFile(name="data.csv", source=source, file_id="file-1")
    code = "import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv')['b'].sum())"
    result = sandbox.run(code, files=[file])
    assert result.logs.strip() == "2"
    assert "data.csv" not in result.changed_files
    again = sandbox.run("import os\nos.remove('/mnt/data/data.csv')\nprint('gone')", files=[file])
    assert again.logs.strip() == "gone"  # placed once: not copied back in


def test_data_dir_has_a_quota(sandbox: Harness) -> None:
    code = (
        "import errno\n"
        "try:\n"
        "    with open('/mnt/data/big', 'wb') as f:\n"
        f"        for _ in range({sandbox.config.session_disk_mb + 8}):\n"
        "            f.write(b'x' * (1 << 20))\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "import os; os.remove('/mnt/data/big')\n"
    )
    assert sandbox.run(code).logs.strip() in ("ENOSPC", "EFBIG")
