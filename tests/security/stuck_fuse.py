"""A FUSE filesystem that never answers a lookup until told to: a process that looks a name up in it
sleeps uninterruptibly once killed (the kernel waits for the answer to a request the filesystem has
already read), as a process on a hung NFS or FUSE mount does. SIGKILL cannot end it; `release()`
answers the lookups and lets it die.

Speaks the FUSE protocol on /dev/fuse directly (mount(2) with fd=), so it needs root and nothing
installed. Only what a lookup needs: INIT is answered, LOOKUPs are held, the rest gets ENOSYS.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import struct
import threading
from pathlib import Path

FUSE_LOOKUP, FUSE_INIT, FUSE_INTERRUPT = 1, 26, 36
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")  # 7.31: major … flags2, then unused
MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)


class StuckFuse:
    def __init__(self, mount_point: Path) -> None:
        self.mount_point = mount_point
        self.lookup_seen = threading.Event()
        self._held: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        mount_point.mkdir(exist_ok=True)
        options = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if _libc.mount(b"agentbox-test-stuck", os.fsencode(mount_point), b"fuse", 0, options) != 0:
            os.close(self._fd)
            raise OSError(ctypes.get_errno(), "mount of the stuck FUSE filesystem failed")
        self._thread = threading.Thread(target=self._serve, name="stuck-fuse", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not select.select([self._fd], [], [], 0.1)[0]:
                continue
            try:
                request = os.read(self._fd, 1 << 20)
            except OSError:
                return  # unmounted (ENODEV)
            _, opcode, unique, *_ = IN_HEADER.unpack_from(request)
            if opcode == FUSE_INIT:
                self._reply(unique, 0, INIT_OUT.pack(7, 31, 0, 0, 0, 0, 4096, 1, 0, 0, 0))
            elif opcode == FUSE_LOOKUP:
                with self._lock:
                    self._held.append(unique)
                self.lookup_seen.set()
            elif opcode != FUSE_INTERRUPT:  # an interrupt gets no answer; the lookup stays held
                self._reply(unique, -errno.ENOSYS)

    def _reply(self, unique: int, error: int, body: bytes = b"") -> None:
        with contextlib.suppress(OSError):  # the request already ended (interrupted, unmounted)
            os.write(self._fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), error, unique) + body)

    def release(self) -> None:
        """Answer every held lookup (ENOENT): their processes wake, and die if they were killed."""
        with self._lock:
            held, self._held = self._held, []
        for unique in held:
            self._reply(unique, -errno.ENOENT)

    def close(self) -> None:
        self.release()
        unmounted = _libc.umount2(os.fsencode(self.mount_point), MNT_DETACH) == 0
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
        if not unmounted:
            raise OSError(ctypes.get_errno(), f"umount of {self.mount_point} failed")
