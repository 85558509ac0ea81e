"""/mnt/data checkpoints (archive on one node, restore on another), once per backend.

The session's user owns /mnt/data and may plant symlinks, FIFOs and sockets there; an archive may
come back from the object store altered. Packing must never follow or store anything but regular
files and directories, and restoring must never write outside the session's directory.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import stat
import tarfile
from pathlib import Path

import pytest

from agentbox.errors import NotFound
from agentbox.sandbox import ExecutionStatus
from agentbox.sandbox.checkpoint import ArchiveTooLarge
from tests.sandbox_fixtures import Harness

pytestmark = pytest.mark.slow
REASON = "the node that held this session stopped; its files were restored, its variables lost"


def archive(sandbox: Harness, key: str, target: Path, max_bytes: int = 64 << 20) -> list[tarfile.TarInfo]:
    size = sandbox.call(sandbox.manager.archive(key, target, max_bytes))
    assert target.stat().st_size == size
    with tarfile.open(target, "r:") as tar:
        return tar.getmembers()


def test_files_and_nested_directories_survive_a_round_trip_between_sessions(
    sandbox: Harness, tmp_path: Path
) -> None:
    made = sandbox.run(
        "import hashlib, os\n"
        "os.makedirs('/mnt/data/a/b/c')\n"
        "open('/mnt/data/a/b/c/deep.txt', 'w').write('deep')\n"
        "os.mkdir('/mnt/data/empty')\n"
        "data = os.urandom(3 << 20)\n"
        "open('/mnt/data/big.bin', 'wb').write(data)\n"
        "open('/mnt/data/run.sh', 'w').write('#!/bin/sh\\n'); os.chmod('/mnt/data/run.sh', 0o4755)\n"
        "print(hashlib.sha256(data).hexdigest())",
        key="ck_src",
    )
    assert made.status is ExecutionStatus.OK, made.logs
    digest = made.logs.strip()
    target = tmp_path / "ck.tar"
    members = {m.name: m for m in archive(sandbox, "ck_src", target)}
    assert set(members) == {"a", "a/b", "a/b/c", "a/b/c/deep.txt", "empty", "big.bin", "run.sh"}
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert members["run.sh"].mode == 0o755  # no setuid bit travels
    assert members["big.bin"].mode == 0o644 and members["a"].mode == 0o755

    restored = sandbox.call(sandbox.manager.restore("ck_dst", target, REASON))
    assert restored == 3
    uid = sandbox.session_uid("ck_dst")
    host_big = sandbox.data_dir("ck_dst") / "big.bin"
    assert host_big.stat().st_uid == uid and (sandbox.data_dir("ck_dst") / "a" / "b").stat().st_uid == uid
    back = sandbox.run(
        "import hashlib, os\n"
        "print(hashlib.sha256(open('/mnt/data/big.bin', 'rb').read()).hexdigest())\n"
        "print(open('/mnt/data/a/b/c/deep.txt').read(), os.path.isdir('/mnt/data/empty'))\n"
        "open('/mnt/data/a/b/c/new.txt', 'w').write('writable')\n"  # the session's own, not root's
        "print(oct(os.stat('/mnt/data/run.sh').st_mode & 0o7777))",
        key="ck_dst",
    )
    assert back.status is ExecutionStatus.OK, back.logs
    assert back.logs.split() == [digest, "deep", "True", "0o755"]
    assert back.restarted and back.state_lost_reason == REASON
    again = sandbox.run("pass", key="ck_dst")
    assert not again.restarted and again.state_lost_reason is None
    for key in ("ck_src", "ck_dst"):
        sandbox.call(sandbox.manager.close(key))


def test_restore_marks_the_next_cell_as_restarted_with_the_reason(sandbox: Harness, tmp_path: Path) -> None:
    sandbox.run("open('/mnt/data/one.txt', 'w').write('1')", key="ck_reason_src")
    target = tmp_path / "reason.tar"
    archive(sandbox, "ck_reason_src", target)
    assert sandbox.call(sandbox.manager.restore("ck_reason", target, "node n2 died")) == 1
    result = sandbox.run("print(open('/mnt/data/one.txt').read())", key="ck_reason")
    assert result.status is ExecutionStatus.OK, result.logs
    assert result.restarted is True
    assert result.state_lost_reason == "node n2 died"
    assert result.logs.strip() == "1"
    for key in ("ck_reason_src", "ck_reason"):
        sandbox.call(sandbox.manager.close(key))


def test_symlinks_fifos_and_sockets_are_never_archived(sandbox: Harness, tmp_path: Path) -> None:
    result = sandbox.run(
        "import os, socket\n"
        "open('/mnt/data/ok.txt', 'w').write('fine')\n"
        "os.symlink('/etc/passwd', '/mnt/data/passwd')\n"
        "os.mkfifo('/mnt/data/pipe')\n"
        "s = socket.socket(socket.AF_UNIX); s.bind('/mnt/data/sock')\n"
        "os.mkdir('/mnt/data/d'); os.symlink('/etc', '/mnt/data/d/etc')\n"
        "os.symlink('/mnt/data/d', '/mnt/data/dirlink')\n",
        key="ck_links",
    )
    assert result.status is ExecutionStatus.OK, result.logs
    target = tmp_path / "links.tar"
    members = archive(sandbox, "ck_links", target)
    assert sorted(m.name for m in members) == ["d", "ok.txt"]
    assert all(m.isreg() or m.isdir() for m in members)
    assert b"root:" not in target.read_bytes()
    sandbox.call(sandbox.manager.close("ck_links"))


def test_the_size_cap_refuses_and_leaves_no_file(sandbox: Harness, tmp_path: Path) -> None:
    sandbox.run("open('/mnt/data/two.bin', 'wb').write(b'x' * (2 << 20))", key="ck_cap")
    target = tmp_path / "cap.tar"
    with pytest.raises(ArchiveTooLarge) as refused:
        sandbox.call(sandbox.manager.archive("ck_cap", target, 1 << 20))
    assert refused.value.total_bytes >= 2 << 20
    assert not target.exists()
    # Headers count too: many empty files pass a cap their (zero) sizes never reach.
    sandbox.run(
        "import os\nos.remove('/mnt/data/two.bin')\n"
        "for i in range(200):\n    open(f'/mnt/data/e{i}', 'w').close()",
        key="ck_cap",
    )
    with pytest.raises(ArchiveTooLarge):
        sandbox.call(sandbox.manager.archive("ck_cap", target, 64 << 10))
    assert not target.exists()
    assert sandbox.call(sandbox.manager.archive("ck_cap", target, 1 << 20)) <= 1 << 20
    sandbox.call(sandbox.manager.close("ck_cap"))


def test_archive_without_a_session_is_not_found(sandbox: Harness, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        sandbox.call(sandbox.manager.archive("ck_nobody", tmp_path / "none.tar", 1 << 20))
    assert not (tmp_path / "none.tar").exists()


def _member(
    tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **extra: object
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    for attr, value in extra.items():
        setattr(info, attr, value)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_a_hostile_archive_restores_only_safe_members_and_nothing_outside(
    sandbox: Harness, tmp_path: Path
) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    planted = sandbox.run(
        f"import os\nos.symlink({str(host)!r}, '/mnt/data/out')\nos.mkfifo('/mnt/data/fifo')\n"
        "os.symlink('/etc/passwd', '/mnt/data/passwd')",
        key="ck_hostile",
    )
    assert planted.status is ExecutionStatus.OK, planted.logs
    data_dir = sandbox.data_dir("ck_hostile")
    if not os.path.lexists(data_dir / "fifo"):
        os.mkfifo(data_dir / "fifo")  # gVisor keeps a FIFO made inside in its own kernel: plant one here
    tag = secrets.token_hex(4)
    absolute = Path(f"/agentbox-ck-abs-{tag}.txt")
    escape = f"ck-escape-{tag}"
    source = tmp_path / "hostile.tar"
    with tarfile.open(source, "w", format=tarfile.PAX_FORMAT) as tar:
        _member(tar, "good.txt", data=b"good")
        _member(tar, "sub", tarfile.DIRTYPE)
        _member(tar, "sub/ok.txt", data=b"ok")
        _member(tar, "suid.sh", data=b"#!/bin/sh\n", mode=0o6777, uid=0, uname="root")
        _member(tar, f"../{escape}", data=b"escaped")
        _member(tar, f"sub/../../{escape}", data=b"escaped")
        _member(tar, str(absolute), data=b"absolute")
        _member(tar, "link", tarfile.SYMTYPE, linkname="/etc/passwd")
        _member(tar, "hard", tarfile.LNKTYPE, linkname="/etc/passwd")
        _member(tar, "null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        _member(tar, "disk", tarfile.BLKTYPE, devmajor=8, devminor=0)
        _member(tar, "pipe", tarfile.FIFOTYPE)
        _member(tar, "out/evil.txt", data=b"through a planted symlink")  # out -> a host directory
        _member(tar, "out", tarfile.DIRTYPE)
        _member(tar, "fifo", data=b"onto a FIFO")  # would block a plain open for writing
        _member(tar, "passwd", data=b"pwned:x:0:0::/:/bin/sh\n")  # a symlink to /etc/passwd there
    passwd_before = Path("/etc/passwd").read_bytes()

    restored = sandbox.call(sandbox.manager.restore("ck_hostile", source, REASON))

    assert restored == 3
    assert list(host.iterdir()) == []
    assert not absolute.exists()
    assert not (data_dir.parent / escape).exists() and not (data_dir / absolute.name).exists()
    assert Path("/etc/passwd").read_bytes() == passwd_before
    names = sorted(os.listdir(data_dir))
    assert names == ["fifo", "good.txt", "out", "passwd", "sub", "suid.sh"]
    assert (data_dir / "out").is_symlink() and (data_dir / "passwd").is_symlink()
    assert stat.S_ISFIFO((data_dir / "fifo").lstat().st_mode)
    suid = (data_dir / "suid.sh").stat()
    assert stat.S_IMODE(suid.st_mode) == 0o755 and suid.st_uid == sandbox.session_uid("ck_hostile")
    seen = sandbox.run(
        "print(open('/mnt/data/good.txt').read(), open('/mnt/data/sub/ok.txt').read())", key="ck_hostile"
    )
    assert seen.logs.split() == ["good", "ok"]
    assert seen.restarted and seen.state_lost_reason == REASON
    sandbox.call(sandbox.manager.close("ck_hostile"))


def test_a_compressed_or_corrupt_archive_is_refused(sandbox: Harness, tmp_path: Path) -> None:
    from agentbox.errors import SandboxError

    gz = tmp_path / "c.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        _member(tar, "zeros.bin", data=b"\0" * (1 << 20))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(hashlib.sha256(b"x").digest() * 100)
    for bad in (gz, junk):
        with pytest.raises(SandboxError):
            sandbox.call(sandbox.manager.restore("ck_bad", bad, REASON))
    assert os.listdir(sandbox.data_dir("ck_bad")) == []
    sandbox.call(sandbox.manager.close("ck_bad"))


def test_a_directory_swapped_for_a_symlink_mid_walk_never_archives_a_host_file(
    sandbox: Harness, tmp_path: Path
) -> None:
    """Code exchanging a directory with a symlink to a host directory (renameat2 RENAME_EXCHANGE)
    while the archive walks: the walk goes by file descriptor, so no host file is ever packed."""
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "HOST-CANARY.txt").write_text("HOST-CANARY")
    started = sandbox.run(
        "import ctypes, os, threading\n"
        "os.mkdir('/mnt/data/d'); open('/mnt/data/d/inside.txt', 'w').write('inside')\n"
        f"os.symlink({str(host)!r}, '/mnt/data/l')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def swap():\n"
        "    for i in range(3_000_000):\n"  # bounded; the stop file ends it sooner
        "        libc.renameat2(-100, b'/mnt/data/d', -100, b'/mnt/data/l', 2)\n"  # RENAME_EXCHANGE
        "        if i % 64 == 0 and os.path.exists('/mnt/data/stop'):\n"
        "            break\n"
        "racer = threading.Thread(target=swap, daemon=True)\n"
        "racer.start()\n",
        key="ck_race",
    )
    assert started.status is ExecutionStatus.OK, started.logs
    names: set[str] = set()
    for attempt in range(200):
        target = tmp_path / f"race-{attempt}.tar"
        names.update(m.name for m in archive(sandbox, "ck_race", target))
        assert b"HOST-CANARY" not in target.read_bytes()
        target.unlink()
    sandbox.run("open('/mnt/data/stop', 'w').close()\nracer.join()", key="ck_race")
    assert names <= {"d", "d/inside.txt", "l", "l/inside.txt"}, names
    sandbox.call(sandbox.manager.close("ck_race"))


def test_names_that_are_not_utf8_survive_a_round_trip(sandbox: Harness, tmp_path: Path) -> None:
    made = sandbox.run(
        "import os\nopen(b'/mnt/data/caf\\xe9 \\xff.txt', 'w').write('latin')\n"
        "open('/mnt/data/' + 'n' * 200, 'w').write('long')",
        key="ck_names",
    )
    assert made.status is ExecutionStatus.OK, made.logs
    target = tmp_path / "names.tar"
    archive(sandbox, "ck_names", target)
    assert sandbox.call(sandbox.manager.restore("ck_names_dst", target, REASON)) == 2
    back = sandbox.run(
        "print(open(b'/mnt/data/caf\\xe9 \\xff.txt').read(), open('/mnt/data/' + 'n' * 200).read())",
        key="ck_names_dst",
    )
    assert back.logs.split() == ["latin", "long"], back.logs
    for key in ("ck_names", "ck_names_dst"):
        sandbox.call(sandbox.manager.close(key))
