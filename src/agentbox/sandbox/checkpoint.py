"""A session's /mnt/data as a tar archive, so another node can rebuild it after this one dies.

Blocking, like datadir: the session manager calls it through asyncio.to_thread. The sandboxed user
owns the directory and may plant symlinks, FIFOs, sockets or devices there, or swap entries while we
walk (a background thread of an earlier cell can still run). So both directions work by directory
file descriptor with O_NOFOLLOW: pack never follows a link out of the directory, and unpack never
writes through one. Only regular files and directories cross, in either direction.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Generator
from pathlib import Path
from typing import IO, cast

from agentbox.errors import SandboxError
from agentbox.sandbox.names import relative_parts

log = logging.getLogger(__name__)

COPY_CHUNK = 1 << 20
MAX_DEPTH = 64
"""Directories nested deeper are not archived: bounds the descriptors held open during a walk."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class ArchiveTooLarge(SandboxError):
    """The data dir does not fit the archive cap; total_bytes is how much had been counted when
    the cap was passed (a lower bound of the whole)."""

    def __init__(self, total_bytes: int, max_bytes: int | None = None) -> None:
        cap = f"the {max_bytes} bytes" if max_bytes is not None else "what"
        super().__init__(f"/mnt/data holds more than {cap} a checkpoint may take")
        self.total_bytes = total_bytes
        self.max_bytes = max_bytes


def pack(data_dir: Path, target: Path, max_bytes: int) -> int:
    """Write an uncompressed tar of data_dir's regular files and directories to the new file target;
    its size. Names are relative, owners 0, modes 0644/0755. ArchiveTooLarge (and no target file)
    when the files' sizes or the archive pass max_bytes."""
    base_fd = os.open(data_dir, _DIR_FLAGS)
    try:
        with open(target, "xb") as out:
            try:
                _write_archive(base_fd, out, max_bytes)
                size = out.tell()
                if size > max_bytes:  # the end-of-archive padding pushed it over
                    raise ArchiveTooLarge(size, max_bytes)
                out.flush()
                os.fsync(out.fileno())
                return size
            except BaseException:
                target.unlink(missing_ok=True)
                raise
    finally:
        os.close(base_fd)


def _write_archive(base_fd: int, out: IO[bytes], max_bytes: int) -> None:
    # PAX: names of any length and bytes (hdrcharset=BINARY for ones that are not UTF-8).
    # Leaving the block on an error writes no end-of-archive blocks; out (ours) stays open either way.
    with tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_CHUNK) as tar:
        total = 0
        walker = _walk(base_fd, "", 0)
        try:
            for rel, dir_fd, name, st in walker:
                if stat.S_ISDIR(st.st_mode):
                    tar.addfile(_info(rel, tarfile.DIRTYPE, 0o755, 0, st.st_mtime))
                else:  # a regular file
                    total += _add_file(tar, rel, dir_fd, name, total, max_bytes)
                if out.tell() > max_bytes:
                    raise ArchiveTooLarge(max(total, out.tell()), max_bytes)
        finally:
            walker.close()  # closes the directories of a walk cut short


def _add_file(tar: tarfile.TarFile, rel: str, dir_fd: int, name: str, total: int, max_bytes: int) -> int:
    """Append one file, read through an fd opened without following anything; the bytes added (0 for
    one that vanished or is no longer a regular file)."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return 0  # vanished, swapped for a symlink (ELOOP) or a FIFO with no writer (fine: skipped)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        if total + st.st_size > max_bytes:
            raise ArchiveTooLarge(total + st.st_size, max_bytes)
        mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
        info = _info(rel, tarfile.REGTYPE, mode, st.st_size, st.st_mtime)
        with _Exactly(fd, st.st_size) as reader:
            tar.addfile(info, cast(IO[bytes], reader))
        return st.st_size
    finally:
        os.close(fd)


def _info(name: str, kind: bytes, mode: int, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Exactly:
    """Exactly `size` bytes of fd: a file that grows while archived is cut, one that shrinks is
    padded with zeros, so its tar entry stays the length its header says (tarfile would otherwise
    stop with 'unexpected end of data' mid-archive)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def __enter__(self) -> _Exactly:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def read(self, n: int = -1) -> bytes:
        want = self._left if n < 0 else min(n, self._left)
        chunks: list[bytes] = []
        got = 0
        while got < want:
            try:
                chunk = os.read(self._fd, want - got)
            except OSError:
                chunk = b""
            if not chunk:
                chunks.append(b"\0" * (want - got))
                got = want
                break
            chunks.append(chunk)
            got += len(chunk)
        self._left -= want
        return b"".join(chunks)


def _walk(
    dir_fd: int, prefix: str, depth: int
) -> Generator[tuple[str, int, str, os.stat_result], None, None]:
    """(name under the base, parent dir fd, entry name, lstat) of each directory and regular file
    below dir_fd, parents before children; by file descriptor only, as datadir._walk, so an entry
    swapped for a symlink mid-walk is never descended into."""
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                rel = f"{prefix}/{entry.name}" if prefix else entry.name
                try:
                    st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue  # vanished while we looked
                if stat.S_ISREG(st.st_mode):
                    yield rel, dir_fd, entry.name, st
                    continue
                if not stat.S_ISDIR(st.st_mode) or depth >= MAX_DEPTH:
                    continue  # symlinks, FIFOs, sockets, devices: never archived
                try:
                    child_fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue  # swapped for a symlink since the stat (ELOOP) or gone
                try:
                    yield rel, dir_fd, entry.name, st
                    yield from _walk(child_fd, rel, depth + 1)
                finally:
                    os.close(child_fd)
    except OSError:
        return


def unpack(data_dir: Path, archive: Path, uid: int | None) -> int:
    """Extract archive's regular files and directories into data_dir (owned by uid when given);
    the number of files restored. Members with absolute names, '..', links, devices, FIFOs, sparse
    maps (zeros that would not come from the archive) or that would land on a symlink, FIFO or other
    non-directory already there are skipped. SandboxError when the files do not fit in the session's
    filesystem or the archive is unreadable."""
    restored = skipped = 0
    base_fd = os.open(data_dir, _DIR_FLAGS)
    try:
        # TarFile itself reads uncompressed tar only, as pack writes: a compressed archive is
        # refused, never inflated.
        with tarfile.TarFile(archive, mode="r", copybufsize=COPY_CHUNK) as tar:
            for member in tar:
                try:
                    parts = relative_parts(member.name)
                except ValueError:
                    skipped += 1
                    continue
                if not (member.isreg() or member.isdir()) or member.issparse():
                    skipped += 1
                    continue
                try:
                    if not _extract(base_fd, parts, tar, member, uid):
                        skipped += 1
                    elif member.isreg():
                        restored += 1
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise SandboxError("the checkpoint does not fit in the session's /mnt/data") from exc
                    raise SandboxError(f"cannot restore {member.name!r}: {exc.strerror}") from exc
    except tarfile.TarError as exc:
        raise SandboxError(f"the checkpoint archive is unreadable: {exc}") from exc
    finally:
        os.close(base_fd)
    if skipped:
        log.warning(
            "checkpoint restore skipped %d members: unsafe names, links, devices or in the way", skipped
        )
    return restored


def _extract(
    base_fd: int, parts: list[str], tar: tarfile.TarFile, member: tarfile.TarInfo, uid: int | None
) -> bool:
    """One member below base_fd; False when something already there is in the way."""
    fds: list[int] = []
    try:
        parent = base_fd
        dirs = parts if member.isdir() else parts[:-1]
        for part in dirs:
            child = _open_dir(parent, part, uid)
            if child is None:
                return False
            fds.append(child)
            parent = child
        if member.isdir():
            return True
        source = tar.extractfile(member)
        if source is None:
            return False
        return _write_file(parent, parts[-1], source, member, uid)
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _open_dir(parent: int, name: str, uid: int | None) -> int | None:
    """An fd of the directory parent/name, made (0755, uid's) when absent; None when a symlink or
    another non-directory has the name."""
    created = False
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
        created = True
    except FileExistsError:
        pass
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return None
        raise
    if created and uid is not None:
        try:
            os.fchown(fd, uid, uid)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _write_file(parent: int, name: str, source: IO[bytes], member: tarfile.TarInfo, uid: int | None) -> bool:
    mode = 0o755 if member.mode & stat.S_IXUSR else 0o644
    try:
        fd = os.open(name, _WRITE_FLAGS, mode, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ETXTBSY):
            return False  # a symlink, a FIFO or a directory already has the name
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        while chunk := source.read(COPY_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)  # an existing file keeps its mode through O_CREAT; and no umask
        if uid is not None:
            os.fchown(fd, uid, uid)
        os.utime(fd, (member.mtime, member.mtime))
        return True
    finally:
        os.close(fd)
