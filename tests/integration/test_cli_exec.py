"""`agentbox exec`: the real console script against a live server with no model, as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import AGENTBOX, LiveServer

pytestmark = pytest.mark.slow

CONTAINER = re.compile(r"container: (cntr_\w+) \(pass --container \1 to reuse it\)")
IMAGE = re.compile(r"image: (cfile_\w+) (/mnt/data/\S+\.png)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # No key configured: the server makes one and keeps it in DATA_DIR/api_key, which the CLI can read.
    live = LiveServer(tmp_path_factory.mktemp("cli-exec") / "data", "").start()
    live.api_key = (live.data_dir / "api_key").read_text().strip()
    yield live
    live.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the CLI runs: no .env, and a data dir of its own with no key in it."""
    (tmp_path / "data").mkdir()
    return tmp_path


def cli_env(server: LiveServer, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "AGENTBOX_DATA_DIR": str(workdir / "data"),
        "AGENTBOX_URL": server.url,
        "AGENTBOX_API_KEY": server.api_key,
        **extra,
    }


def agentbox_exec(
    env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTBOX), "exec", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def container_of(done: subprocess.CompletedProcess[str]) -> str:
    match = CONTAINER.search(done.stderr)
    assert match, done.stderr
    return match.group(1)


def test_prints_what_the_cell_prints(server: LiveServer, workdir: Path) -> None:
    done = agentbox_exec(cli_env(server, workdir), workdir, "-c", "print(6 * 7)")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"  # only the program's own output on stdout
    container_of(done)


def test_an_error_exits_1_with_the_traceback_on_stderr(server: LiveServer, workdir: Path) -> None:
    done = agentbox_exec(cli_env(server, workdir), workdir, "-c", "print('before')\n1 / 0")
    assert done.returncode == 1
    assert done.stdout == "before\n"
    assert "ZeroDivisionError" in done.stderr and "division by zero" in done.stderr


def test_state_is_kept_in_the_container_across_invocations(server: LiveServer, workdir: Path) -> None:
    env = cli_env(server, workdir)
    first = agentbox_exec(env, workdir, "-c", "answer = 41")
    assert first.returncode == 0, first.stderr
    container = container_of(first)
    second = agentbox_exec(env, workdir, "--container", container, "-c", "print(answer + 1)")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "42\n"
    assert "container:" not in second.stderr  # reused, not made anew


def test_code_from_a_file_and_from_stdin(server: LiveServer, workdir: Path) -> None:
    env = cli_env(server, workdir)
    script = workdir / "script.py"
    script.write_text("total = sum(range(10))\nprint(total)\n")
    from_file = agentbox_exec(env, workdir, str(script))
    assert (from_file.returncode, from_file.stdout) == (0, "45\n"), from_file.stderr
    from_stdin = agentbox_exec(env, workdir, "-", stdin="print('from', 'stdin')\n")
    assert (from_stdin.returncode, from_stdin.stdout) == (0, "from stdin\n"), from_stdin.stderr


def test_usage_errors_exit_2(server: LiveServer, workdir: Path) -> None:
    env = cli_env(server, workdir)
    neither = agentbox_exec(env, workdir)
    both = agentbox_exec(env, workdir, "-", "-c", "print(1)")
    missing = agentbox_exec(env, workdir, str(workdir / "missing.py"))
    assert [neither.returncode, both.returncode, missing.returncode] == [2, 2, 2]
    assert "exactly one" in neither.stderr and "exactly one" in both.stderr
    assert "missing.py" in missing.stderr and "No such file" in missing.stderr


def exec_in_background(server: LiveServer, workdir: Path, code: str) -> subprocess.Popen[str]:
    """`agentbox exec -c code` still running, its output read by the test as it comes."""
    return subprocess.Popen(
        [str(AGENTBOX), "exec", "-c", code],
        env=cli_env(server, workdir),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_output_arrives_while_the_cell_runs(server: LiveServer, workdir: Path) -> None:
    code = "import time\nprint('first')\ntime.sleep(3)\nprint('second')\n"
    with exec_in_background(server, workdir, code) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "first\n"
        assert process.poll() is None  # the cell is still sleeping
        rest, errors = process.communicate(timeout=60)
    assert (process.returncode, rest) == (0, "second\n"), errors


def test_ctrl_c_interrupts_the_cell(server: LiveServer, workdir: Path) -> None:
    # If output only came at the cell's end, readline would wait out the whole sleep and 'after' would
    # print: its absence shows the first line came, and the interrupt landed, while the cell ran.
    code = "import time\nprint('started')\ntime.sleep(60)\nprint('after')\n"
    with exec_in_background(server, workdir, code) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == "started\n"
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=60)
    assert process.returncode == 1, errors
    assert rest == ""
    assert "interrupting the cell" in errors and "KeyboardInterrupt" in errors


def test_a_second_ctrl_c_stops_waiting(server: LiveServer, workdir: Path) -> None:
    # The cell ignores the interrupt, so only the second press can end the wait before the grace's kill.
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    code += "print('started')\ntime.sleep(60)\n"
    with exec_in_background(server, workdir, code) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline() == "started\n"
        process.send_signal(signal.SIGINT)
        # Two presses at once would reach Python's handler as one; the second comes once the first is seen.
        while "interrupting the cell" not in process.stderr.readline():
            pass
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert "stopped waiting; the cell may still run in cntr_" in errors


def test_timeout_passes_through(server: LiveServer, workdir: Path) -> None:
    done = agentbox_exec(
        cli_env(server, workdir), workdir, "--timeout", "1", "-c", "import time\ntime.sleep(30)"
    )
    assert done.returncode == 1
    assert "timeout" in done.stderr


def test_figures_and_files_are_named_on_stderr(server: LiveServer, workdir: Path) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 4, 9])\n"
        "plt.show()\n"
        "with open('/mnt/data/squares.csv', 'w') as f:\n"
        "    f.write('n,sq\\n3,9\\n')\n"
        "print('done')\n"
    )
    done = agentbox_exec(cli_env(server, workdir), workdir, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    image = IMAGE.search(done.stderr)
    assert image, done.stderr
    assert re.search(r"file: cfile_\w+ /mnt/data/squares\.csv", done.stderr), done.stderr
    container = container_of(done)
    content = httpx.get(
        f"{server.base_url}/containers/{container}/files/{image.group(1)}/content",
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert content.status_code == 200 and content.content.startswith(b"\x89PNG")


def test_the_key_comes_from_the_servers_data_dir_or_api_keys(server: LiveServer, workdir: Path) -> None:
    env = cli_env(server, workdir, AGENTBOX_DATA_DIR=str(server.data_dir))
    del env["AGENTBOX_API_KEY"]
    from_file = agentbox_exec(env, workdir, "-c", "print('keyed by file')")
    assert (from_file.returncode, from_file.stdout) == (0, "keyed by file\n"), from_file.stderr
    env = cli_env(server, workdir, AGENTBOX_API_KEYS=f"{server.api_key},sk-other")
    del env["AGENTBOX_API_KEY"]
    from_keys = agentbox_exec(env, workdir, "-c", "print('keyed by list')")
    assert (from_keys.returncode, from_keys.stdout) == (0, "keyed by list\n"), from_keys.stderr


def test_a_wrong_key_is_one_line_naming_where_it_came_from(server: LiveServer, workdir: Path) -> None:
    done = agentbox_exec(cli_env(server, workdir, AGENTBOX_API_KEY="sk-wrong"), workdir, "-c", "print(1)")
    assert done.returncode == 3
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "401" in line and "AGENTBOX_API_KEY" in line


def test_an_unknown_container_gets_the_servers_message(server: LiveServer, workdir: Path) -> None:
    done = agentbox_exec(cli_env(server, workdir), workdir, "--container", "cntr_nosuch", "-c", "print(1)")
    assert done.returncode == 3
    [line] = done.stderr.splitlines()
    assert "404" in line and "cntr_nosuch" in line


def test_an_unreachable_server_is_one_line(server: LiveServer, workdir: Path) -> None:
    with socket.socket() as bound:  # bound but not listening: connections to it are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        done = agentbox_exec(cli_env(server, workdir, AGENTBOX_URL=url), workdir, "-c", "print(1)")
    assert done.returncode == 3
    [line] = done.stderr.splitlines()
    assert "cannot reach" in line and url in line
