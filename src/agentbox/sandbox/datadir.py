"""A session's /mnt/data on the host: its size-limited filesystem, input files, scans and reads.

Everything here blocks; the session manager calls it through asyncio.to_thread. Paths inside the
directory are walked with openat-style calls and O_NOFOLLOW, because the sandboxed user owns
its contents and may plant symlinks, FIFOs or devices there.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import sys
from collections.abc import Generator
from pathlib import Path

from agentbox.errors import InvalidRequest, NotFound, SandboxError
from agentbox.sandbox.names import relative_parts

SCAN_MAX_ENTRIES = 1000
SCAN_MAX_DEPTH = 8
COPY_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

MS_NOSUID, MS_NODEV, MNT_DETACH = 0x2, 0x4, 0x2
_libc = ctypes.CDLL(None, use_errno=True)

Snapshot = dict[str, tuple[int, int, int]]
"""name relative to /mnt/data → (size, mtime_ns, inode) of a regular file."""


def mount_session_fs(path: Path, name: str, size_mb: int, uid: int, inodes: int) -> None:
    """Create `path` and mount a tmpfs of size_mb on it owned by uid (ENOSPC past the size or inodes)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    options = f"size={size_mb}m,nr_inodes={inodes},mode=0700,uid={uid},gid={uid}"
    # mount(2) itself: the mount(8) binary costs a process start on every new session.
    if _libc.mount(f"agentbox-{name}".encode(), os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV,
                   options.encode()) != 0:  # fmt: skip
        raise SandboxError(f"mount of the session's filesystem failed: {os.strerror(ctypes.get_errno())}")


def make_plain_dir(path: Path, uid: int | None) -> None:
    """The weak fallback: an ordinary directory, no size limit."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if uid is not None:
        os.chown(path, uid, uid)


def remove_session_fs(path: Path) -> None:
    """Unmount (if mounted) and delete the session directory; missing is fine."""
    target = os.fsencode(path)
    # A straggler still holding it: detach now, freed later.
    if is_mountpoint(path) and _libc.umount2(target, 0) != 0 and _libc.umount2(target, MNT_DETACH) != 0:
        raise SandboxError(f"umount of {path.name} failed: {os.strerror(ctypes.get_errno())}")
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def is_mountpoint(path: Path) -> bool:
    target = os.fsencode(path).replace(b" ", b"\\040")
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == target for line in f)


def mounts_under(root: Path) -> list[Path]:
    """Mount points strictly below root, deepest first (for sweeping after a crash)."""
    prefix = os.fsencode(root).rstrip(b"/") + b"/"
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = line.split(b" ")[4].replace(b"\\040", b" ")
            if point.startswith(prefix):
                found.append(Path(os.fsdecode(point)))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def place_file(data_dir: Path, name: str, source: Path, uid: int | None) -> None:
    """Copy source to data_dir/name (one component), owned by the session uid."""
    (name_part,) = relative_parts(name)
    dir_fd = os.open(data_dir, _DIR_FLAGS)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            out_fd = os.open(name_part, flags, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                raise
            # The user put a symlink, FIFO or directory under that name: the upload wins.
            _remove_entry(dir_fd, name_part)
            out_fd = os.open(name_part, flags, 0o644, dir_fd=dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(out_fd).st_mode):
                raise SandboxError(f"cannot place {name_part!r}: not a regular file")
            with open(source, "rb") as src:
                _copy(src.fileno(), out_fd)
            if uid is not None:
                os.fchown(out_fd, uid, uid)
        finally:
            os.close(out_fd)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise SandboxError(f"{name!r} does not fit in the session's /mnt/data") from exc
        raise SandboxError(f"cannot place {name!r} in /mnt/data: {exc.strerror}") from exc
    finally:
        os.close(dir_fd)


def _remove_entry(dir_fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        raise SandboxError(f"cannot place {name!r}: a directory of that name exists")
    os.unlink(name, dir_fd=dir_fd)


def snapshot(data_dir: Path) -> Snapshot:
    """Regular files under data_dir (lstat, no symlink followed), bounded in entries and depth."""
    found: Snapshot = {}
    try:
        base_fd = os.open(data_dir, _DIR_FLAGS)
    except OSError:
        return found
    walker = _walk(base_fd, "", 0)
    try:
        for seen, (rel, st) in enumerate(walker):
            if seen >= SCAN_MAX_ENTRIES:
                break
            if stat.S_ISREG(st.st_mode):
                found[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    finally:
        walker.close()  # closes the directories of a walk cut short
        os.close(base_fd)
    return found


def _walk(dir_fd: int, prefix: str, depth: int) -> Generator[tuple[str, os.stat_result], None, None]:
    """(name under the base, lstat) of every entry below dir_fd, by file descriptor only: the user
    can swap a directory for a symlink between our look and our descent (renameat2 with
    RENAME_EXCHANGE), and a path walk would then list the symlink's target on the host."""
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                rel = f"{prefix}/{entry.name}" if prefix else entry.name
                try:
                    st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue  # vanished while we looked
                yield rel, st
                if not stat.S_ISDIR(st.st_mode) or depth >= SCAN_MAX_DEPTH:
                    continue
                try:
                    # O_NOFOLLOW: swapped for a symlink since the stat above, the open fails (ELOOP).
                    child_fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    yield from _walk(child_fd, rel, depth + 1)
                finally:
                    os.close(child_fd)
    except OSError:
        return


def changed(before: Snapshot, after: Snapshot) -> tuple[str, ...]:
    return tuple(sorted(name for name, sig in after.items() if before.get(name) != sig))


@contextlib.contextmanager
def _opened(data_dir: Path, name: str, max_bytes: int) -> Generator[int, None, None]:
    """An fd of data_dir/name: regular file, no symlink on the way, never blocking on a FIFO.
    NotFound for anything else; InvalidRequest when it is larger than max_bytes."""
    try:
        parts = relative_parts(name)
    except ValueError as exc:
        raise NotFound(f"no file {name!r} in /mnt/data") from exc
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(data_dir, _DIR_FLAGS))
            for part in parts[:-1]:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            fds.append(os.open(parts[-1], flags, dir_fd=fds[-1]))
            st = os.fstat(fds[-1])
        except OSError as exc:
            raise NotFound(f"no readable file {name!r} in /mnt/data") from exc
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"{name!r} in /mnt/data is not a regular file")
        if st.st_size > max_bytes:
            raise InvalidRequest(f"{name!r} is {st.st_size} bytes, more than the {max_bytes} allowed")
        yield fds[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


def remove_file(data_dir: Path, name: str) -> bool:
    """Unlink data_dir/name, walking its directories with O_NOFOLLOW (a symlink in the way is not
    followed: nothing outside data_dir can be reached); a symlink or FIFO at the end is itself
    removed, a directory is not. Whether an entry was removed."""
    try:
        parts = relative_parts(name)
    except ValueError:
        return False
    fds: list[int] = []
    try:
        fds.append(os.open(data_dir, _DIR_FLAGS))
        for part in parts[:-1]:
            fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
        os.unlink(parts[-1], dir_fd=fds[-1])  # unlink(2) never follows the last component
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.EPERM):
            return False  # absent, a symlink in the way, or a directory (EISDIR; EPERM on some kernels)
        raise SandboxError(f"cannot remove {name!r} from /mnt/data: {exc.strerror}") from exc
    finally:
        for fd in reversed(fds):
            os.close(fd)


def read_file(data_dir: Path, name: str, max_bytes: int) -> bytes:
    """Bytes of data_dir/name (see _opened); InvalidRequest when it grows past max_bytes."""
    with _opened(data_dir, name, max_bytes) as fd:
        chunks = []
        total = 0
        try:
            while chunk := os.read(fd, min(COPY_CHUNK, max_bytes + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise InvalidRequest(f"{name!r} grew past the {max_bytes} bytes allowed")
        except OSError as exc:
            raise NotFound(f"no readable file {name!r} in /mnt/data") from exc
        return b"".join(chunks)


def copy_out(data_dir: Path, name: str, target: Path, max_bytes: int) -> int:
    """Copy data_dir/name (see _opened) to the new file target, in the kernel and never whole in
    memory; its size. InvalidRequest when it grows past max_bytes while copied."""
    with _opened(data_dir, name, max_bytes) as fd:
        with open(target, "xb") as out:
            copied = _copy(fd, out.fileno(), max_bytes)
            if copied > max_bytes:
                raise InvalidRequest(f"{name!r} grew past the {max_bytes} bytes allowed")
            os.fsync(out.fileno())
        return copied


def _copy(src: int, dst: int, limit: int | None = None) -> int:
    """Bytes from src's position on to dst by sendfile(2), never through our memory; stops once past
    limit (if any). Falls back to read/write where sendfile cannot do the pair."""
    limit = sys.maxsize if limit is None else limit
    total = 0
    try:
        while total <= limit and (sent := os.sendfile(dst, src, None, COPY_CHUNK)):
            total += sent
        return total
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS) or total:
            raise
    while total <= limit and (chunk := os.read(src, COPY_CHUNK)):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
        total += len(chunk)
    return total
