"""Files crossing the boundary (spec/sandbox.md F1-F10), once per backend.

The server only ever copies bytes in (place_file) and copies regular files out (copy_file_out)
with O_NOFOLLOW beneath the session directory; it never extracts, imports or unpickles anything.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import zipfile
from pathlib import Path

import pytest

from agentbox.errors import InvalidRequest, NotFound
from agentbox.sandbox import ExecutionStatus, InputFile, datadir
from tests.sandbox_fixtures import REPO, Harness

pytestmark = pytest.mark.slow
_copies = itertools.count()


def copy_out(sandbox: Harness, key: str, name: str, directory: Path, max_bytes: int = 512 << 20) -> bytes:
    """What the server stores for /mnt/data/<name> (a run's file output), read back."""
    target = directory / f"copy-{next(_copies)}"
    try:
        size = sandbox.call(sandbox.manager.copy_file_out(key, name, target, max_bytes))
    except BaseException:
        assert not target.exists(), "a refused copy leaves no file behind"
        raise
    data = target.read_bytes()
    assert len(data) == size
    return data


def test_f1_f2_f3_uploaded_archives_are_placed_as_bytes_never_extracted(
    sandbox: Harness, tmp_path: Path
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../../escape.txt", "escaped")
        zf.writestr("/abs.txt", "absolute")
        zf.writestr("bomb.bin", b"\0" * (8 << 20))  # 8 MiB of zeros, ~8 KiB compressed
    source = tmp_path / "evil.zip"
    source.write_bytes(buf.getvalue())
    result = sandbox.run(
        "import os\nprint(sorted(os.listdir('/mnt/data')), os.path.getsize('/mnt/data/evil.zip'))",
        key="files",
        files=[InputFile(name="evil.zip", source=source, file_id="file-zip")],
    )
    assert result.logs.split() == ["['evil.zip']", str(len(buf.getvalue()))]
    assert not (sandbox.config.sessions_dir / "escape.txt").exists()
    assert not (sandbox.data_dir("files").parent.parent / "escape.txt").exists()


def test_f6_odd_names_fifos_and_sockets_are_never_listed_or_opened(sandbox: Harness, tmp_path: Path) -> None:
    code = (
        "import os, socket\n"
        "open('/mnt/data/out\\n.csv', 'w').write('a')\n"
        "open('/mnt/data/a\";b.csv', 'w').write('b')\n"
        "os.mkfifo('/mnt/data/pipe')\n"
        "s = socket.socket(socket.AF_UNIX); s.bind('/mnt/data/sock')\n"
    )
    result = sandbox.run(code, key="odd")
    assert result.status is ExecutionStatus.OK, result.logs
    assert result.changed_files == ('a";b.csv', "out\n.csv")
    for name in ("pipe", "sock"):
        with pytest.raises(NotFound):  # a FIFO would block a plain open; O_NONBLOCK + fstat refuses it
            copy_out(sandbox, "odd", name, tmp_path)


def test_f7_symlinks_out_of_the_session_are_never_followed(sandbox: Harness, tmp_path: Path) -> None:
    canary = tmp_path / "host-canary.txt"
    canary.write_text("HOST-CANARY")
    result = sandbox.run(
        "import os\n"
        "open('/mnt/data/ok.txt', 'w').write('fine')\n"
        "os.symlink('/etc/passwd', '/mnt/data/p')\n"
        f"os.symlink({str(canary)!r}, '/mnt/data/host')\n"
        "os.mkdir('/mnt/data/d'); os.symlink('/etc', '/mnt/data/d/link')\n",
        key="links",
    )
    assert result.status is ExecutionStatus.OK, result.logs
    assert result.changed_files == ("ok.txt",)
    assert copy_out(sandbox, "links", "ok.txt", tmp_path) == b"fine"
    for name in ("p", "host", "d/link/passwd", "d", "../links/ok.txt", "/etc/passwd", "missing"):
        with pytest.raises(NotFound):
            copy_out(sandbox, "links", name, tmp_path)


def test_f8_symlink_swap_race_never_leaks_a_host_file(sandbox: Harness, tmp_path: Path) -> None:
    canary = tmp_path / "race-canary.txt"
    canary.write_text("RACE-CANARY")
    sandbox.run(
        "import os, threading\n"
        "def swap():\n"
        "    for _ in range(200000):\n"
        "        try:\n"
        "            open('/mnt/data/new', 'w').write('inside')\n"
        "            os.replace('/mnt/data/new', '/mnt/data/target')\n"
        f"            os.symlink({str(canary)!r}, '/mnt/data/lnk')\n"
        "            os.replace('/mnt/data/lnk', '/mnt/data/target')\n"
        "        except OSError:\n"
        "            pass\n"
        "threading.Thread(target=swap, daemon=True).start()\n",
        key="race",
    )
    seen: set[bytes] = set()
    for _ in range(1000):
        try:
            seen.add(copy_out(sandbox, "race", "target", tmp_path))
        except NotFound:
            seen.add(b"<refused>")
    assert b"RACE-CANARY" not in seen
    assert seen <= {b"inside", b"<refused>", b""}
    sandbox.call(sandbox.manager.close("race"))


def test_f11_a_directory_swapped_for_a_symlink_never_lists_a_host_directory(
    sandbox: Harness, tmp_path: Path
) -> None:
    """The server lists /mnt/data by file descriptor: code exchanging a directory with a symlink
    to a host directory (renameat2 RENAME_EXCHANGE, atomic) between the server's look at the entry
    and its descent must never make it list the host directory."""
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "HOST-CANARY.txt").write_text("host")
    started = sandbox.run(
        "import ctypes, os, threading\n"
        "os.mkdir('/mnt/data/d'); open('/mnt/data/d/inside.txt', 'w').write('inside')\n"
        f"os.symlink({str(host)!r}, '/mnt/data/l')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "swaps = [0, 0]\n"
        "def swap():\n"
        "    for _ in range(3_000_000):\n"  # bounded; the stop file ends it sooner
        "        if libc.renameat2(-100, b'/mnt/data/d', -100, b'/mnt/data/l', 2) == 0:\n"  # RENAME_EXCHANGE
        "            swaps[0] += 1\n"
        "        else:\n"
        "            swaps[1] = ctypes.get_errno()\n"
        "        if swaps[0] % 64 == 0 and os.path.exists('/mnt/data/stop'):\n"
        "            break\n"
        "racer = threading.Thread(target=swap, daemon=True)\n"
        "racer.start()\n",
        key="exchange",
    )
    assert started.status is ExecutionStatus.OK, started.logs
    data_dir = sandbox.data_dir("exchange")
    seen: set[str] = set()
    for _ in range(2000):  # what the server takes before and after every cell
        seen.update(datadir.snapshot(data_dir))
    for _ in range(5):
        seen.update(sandbox.run("pass", key="exchange").changed_files)
    stopped = sandbox.run(
        "open('/mnt/data/stop', 'w').close()\nracer.join()\nprint(swaps[0], swaps[1])", key="exchange"
    )
    swaps = int(stopped.logs.split()[0])
    if sandbox.backend == "bubblewrap":
        assert swaps > 0, stopped.logs  # the race really ran
    assert not [name for name in seen if "HOST-CANARY" in name]
    assert seen <= {"d/inside.txt", "l/inside.txt", "stop"}, seen
    sandbox.call(sandbox.manager.close("exchange"))


def test_files_are_reported_down_to_the_scan_depth_and_no_deeper(sandbox: Harness) -> None:
    result = sandbox.run(
        "import os\n"
        "path = '/mnt/data'\n"
        "for level in range(12):\n"
        "    open(f'{path}/f{level}.txt', 'w').write('x')\n"
        "    path += f'/d{level}'\n"
        "    os.mkdir(path)\n",
        key="deep",
    )
    expected = ["/".join([*(f"d{i}" for i in range(level)), f"f{level}.txt"]) for level in range(9)]
    assert result.changed_files == tuple(sorted(expected))
    sandbox.call(sandbox.manager.close("deep"))


def test_f9_planted_startup_files_do_not_run_in_a_new_kernel_or_the_server(sandbox: Harness) -> None:
    sandbox.run(
        "for name in ('sitecustomize.py', 'usercustomize.py', 'evil.pth', 'site.py', 'json.py'):\n"
        "    open('/mnt/data/' + name, 'w').write(\"open('/mnt/data/PWNED', 'w').write('x')\\n\")\n"
        "import os; os._exit(0)",
        key="plant",
    )
    after = sandbox.run("import json, os\nprint(os.path.exists('/mnt/data/PWNED'))", key="plant")
    assert after.restarted
    assert after.logs.strip() == "False"
    import sys

    assert not any(str(sandbox.config.sessions_dir) in p for p in sys.path)


def test_f10_server_code_never_unpickles_or_imports_session_files() -> None:
    server = REPO / "src" / "agentbox"
    pattern = re.compile(r"\b(pickle|cPickle|joblib|dill|marshal)\b|np\.load|numpy\.load|torch\.load")
    offenders = [
        str(path.relative_to(REPO))
        for path in server.rglob("*.py")
        if "inside" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_a_large_output_file_is_copied_out_whole_and_the_size_cap_holds(
    sandbox: Harness, tmp_path: Path
) -> None:
    code = (
        "import hashlib, os\n"
        "data = os.urandom(1 << 20) * 20\n"
        "open('/mnt/data/big.bin', 'wb').write(data)\n"
        "print(hashlib.sha256(data).hexdigest())"
    )
    digest = sandbox.run(code, key="big").logs.strip()
    assert hashlib.sha256(copy_out(sandbox, "big", "big.bin", tmp_path)).hexdigest() == digest
    with pytest.raises(InvalidRequest, match="more than the"):
        copy_out(sandbox, "big", "big.bin", tmp_path, max_bytes=(20 << 20) - 1)
    sandbox.call(sandbox.manager.close("big"))
