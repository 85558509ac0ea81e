"""SessionManager: one sandboxed kernel and one /mnt/data per key (thread), created lazily.

Lifecycle of a session:  (absent) ──execute──▶ live(kernel) ──kernel killed──▶ live(no kernel)
                         ──execute──▶ live(fresh kernel, restarted) ──close──▶ (absent, files gone)
One execution at a time per session (its lock); different sessions run concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentbox.errors import InvalidRequest, NotFound, SandboxError, SandboxUnavailable
from agentbox.sandbox import cgroups, datadir, isolation, launcher
from agentbox.sandbox.config import SandboxConfig
from agentbox.sandbox.execution import Execution, ExecutionStatus, InputFile
from agentbox.sandbox.kernel import Kernel, KernelGone, Reply
from agentbox.sandbox.names import session_dirname

IMAGE_FILE_MAX = 16 << 20
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass(eq=False)
class _Session:
    key: str
    name: str
    data_dir: Path
    uid: int
    slot: int
    cgroup: cgroups.SessionCgroup | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    kernel: Kernel | None = None
    kernels_started: int = 0
    oom_baseline: int = 0
    placed: set[str] = field(default_factory=set)
    closed: bool = False


class SessionManager:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._sessions: dict[str, _Session] = {}
        self._free_slots = list(range(config.max_sessions - 1, -1, -1))
        self._registry_lock = asyncio.Lock()
        self._caps: isolation.HostCapabilities | None = None
        # Cgroups are grouped per sessions_dir, so two managers (a server and a test run) never sweep
        # each other's sessions.
        digest = hashlib.sha256(os.fsencode(config.sessions_dir.resolve())).hexdigest()[:12]
        self._cgroup_group = f"agentbox-{digest}"

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check the host's isolation and sweep what a crashed server left behind.

        Raises SandboxUnavailable with a sentence when the full sandbox cannot run and allow_weak is off.
        """
        caps = await asyncio.to_thread(isolation.probe)
        reason = isolation.unavailable_reason(caps)
        if reason and not (self._config.allow_weak and caps.bwrap_version):
            raise SandboxUnavailable(f"The sandbox cannot start: {reason}")
        self._caps = caps
        await asyncio.to_thread(self._prepare_dirs)

    def _prepare_dirs(self) -> None:
        sessions_dir = self._config.sessions_dir
        sessions_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._strong:
            self._config.stage_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
            cgroups.sweep(self._cgroup_group)
        for mount_point in datadir.mounts_under(sessions_dir):
            datadir.remove_session_fs(mount_point)
        for entry in sessions_dir.iterdir():
            datadir.remove_session_fs(entry)

    async def aclose(self) -> None:
        """Kill every session, unmount and remove its files."""
        await asyncio.gather(*(self.close(key) for key in list(self._sessions)))
        if self._strong:
            await asyncio.to_thread(cgroups.remove_group, self._cgroup_group)

    @property
    def _strong(self) -> bool:
        return self._caps is not None and self._caps.strong

    def has_session(self, key: str) -> bool:
        return key in self._sessions

    def isolation_report(self) -> list[tuple[str, bool, str]]:
        caps = self._caps or isolation.probe()
        return isolation.report(caps, self._config.allow_weak)

    # --- sessions -----------------------------------------------------------------------------
    async def _session(self, key: str) -> _Session:
        if self._caps is None:
            raise SandboxError("SessionManager.start() has not been called")
        async with self._registry_lock:
            session = self._sessions.get(key)
            if session is not None:
                return session
            if not self._free_slots:
                raise SandboxUnavailable(f"all {self._config.max_sessions} sandbox sessions are in use")
            slot = self._free_slots.pop()
            name = session_dirname(key)
            uid = self._config.uid_base + slot
            session = _Session(key, name, self._config.sessions_dir / name, uid, slot, None)
            try:
                await asyncio.to_thread(self._create_session, session)
            except BaseException:
                self._free_slots.append(slot)
                raise
            self._sessions[key] = session
            return session

    def _create_session(self, session: _Session) -> None:
        cfg = self._config
        if self._strong:
            datadir.mount_session_fs(session.data_dir, session.name, cfg.session_disk_mb, session.uid)
            session.cgroup = cgroups.SessionCgroup(self._cgroup_group, session.name)
            try:
                session.cgroup.create(cfg.memory_mb, cfg.pids_max, cfg.cpus)
            except OSError as exc:
                datadir.remove_session_fs(session.data_dir)
                raise SandboxError(f"cannot create the session's cgroups: {exc.strerror}") from exc
        else:
            datadir.make_plain_dir(session.data_dir, None)

    async def close(self, key: str) -> None:
        """Kill the session's kernel and drop the session with its files; unknown keys are fine."""
        async with self._registry_lock:
            session = self._sessions.pop(key, None)
        if session is None:
            return
        session.closed = True
        if session.kernel is not None:
            await session.kernel.kill()  # a running execute() then ends as KILLED at once
        async with session.lock:
            await asyncio.to_thread(self._remove_session, session)
        self._free_slots.append(session.slot)

    def _remove_session(self, session: _Session) -> None:
        if session.cgroup is not None:
            session.cgroup.kill()
            session.cgroup.remove()
        datadir.remove_session_fs(session.data_dir)

    # --- kernels ------------------------------------------------------------------------------
    async def _ensure_kernel(self, session: _Session) -> tuple[Kernel, bool]:
        if session.kernel is not None and session.kernel.alive:
            return session.kernel, False
        if session.kernel is not None:
            await session.kernel.kill()
        cfg = self._config
        spec = launcher.LaunchSpec(
            stage_dir=cfg.stage_dir,
            runtime_dir=cfg.runtime_dir.resolve(),
            data_dir=session.data_dir,
            uid=session.uid,
            cgroup_procs=tuple(session.cgroup.procs_files) if session.cgroup else (),
            tmp_bytes=cfg.tmp_size_mb << 20,
            fsize_bytes=cfg.session_disk_mb << 20,
            nproc=cfg.pids_max,
            output_limit=cfg.output_limit_bytes,
            max_images=cfg.max_images_per_cell,
        )
        argv = launcher.command(spec) if self._strong else launcher.weak_command(spec)
        if session.cgroup is not None:
            session.oom_baseline = await asyncio.to_thread(session.cgroup.oom_kills)

        async def kill_tree(spare: int) -> str | None:
            cg = session.cgroup
            if cg is None:  # weak mode: the process group and bwrap's pid namespace are all we have
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(spare, signal.SIGKILL)
                return None
            await asyncio.to_thread(cg.kill, spare)
            if await asyncio.to_thread(cg.oom_kills) > session.oom_baseline:
                return f"it ran out of memory (limit {cfg.memory_mb} MiB)"
            return None

        kernel = await Kernel.start(
            argv, max_images=cfg.max_images_per_cell, start_timeout_s=cfg.start_timeout_s, kill_tree=kill_tree
        )
        restarted = session.kernels_started > 0
        session.kernels_started += 1
        session.kernel = kernel
        return kernel, restarted

    # --- the engine's calls -------------------------------------------------------------------
    async def execute(self, key: str, code: str, files: Sequence[InputFile] = ()) -> Execution:
        """Run one cell in the key's session (created on first use) after placing new input files.

        Raises SandboxUnavailable when no kernel can be started, SandboxError when a file cannot be
        placed; a cell's own failures (error, timeout, crash) are an Execution, not an exception.
        """
        started = time.monotonic()
        session = await self._session(key)
        async with session.lock:
            if session.closed:
                raise SandboxError("the session was closed while this execution waited")
            await self._place(session, files)
            kernel, restarted = await self._ensure_kernel(session)
            before = await asyncio.to_thread(datadir.snapshot, session.data_dir)
            cfg = self._config
            images: list[bytes] = []
            try:
                reply = await kernel.run(code, cfg.exec_timeout_s, cfg.interrupt_grace_s)
            except KernelGone as gone:
                session.kernel = None
                status, logs = ExecutionStatus.KILLED, _join(gone.output, gone.reason)
            else:
                status, logs, images = self._outcome(reply)
            after = await asyncio.to_thread(datadir.snapshot, session.data_dir)
            changed = datadir.changed(before, after)
            if not images:
                images = await asyncio.to_thread(self._image_files, session.data_dir, changed)
            return Execution(
                status=status,
                logs=logs,
                images=tuple(images),
                changed_files=changed,
                restarted=restarted,
                duration_s=time.monotonic() - started,
            )

    def _outcome(self, reply: Reply) -> tuple[ExecutionStatus, str, list[bytes]]:
        limit = self._config.output_limit_bytes
        logs = reply.output
        if reply.output_bytes > limit:
            logs += f"\n[output truncated: {reply.output_bytes} bytes in total, first {limit} shown]\n"
        if reply.traceback:
            logs = _join(logs, reply.traceback)
        if reply.interrupted:
            sentence = (
                f"Execution interrupted: the cell ran past {self._config.exec_timeout_s:g} s; "
                "variables and files were kept."
            )
            return ExecutionStatus.TIMEOUT, _join(logs, sentence), reply.images
        status = ExecutionStatus.OK if reply.status == "ok" else ExecutionStatus.ERROR
        return status, logs, reply.images

    async def _place(self, session: _Session, files: Sequence[InputFile]) -> None:
        uid = session.uid if self._strong else None
        for file in files:
            if file.file_id in session.placed:
                continue
            await asyncio.to_thread(datadir.place_file, session.data_dir, file.name, file.source, uid)
            session.placed.add(file.file_id)

    def _image_files(self, data_dir: Path, changed: tuple[str, ...]) -> list[bytes]:
        images: list[bytes] = []
        for name in changed:
            if len(images) >= self._config.max_images_per_cell:
                break
            if not name.lower().endswith(_IMAGE_SUFFIXES):
                continue
            try:
                data = datadir.read_file(data_dir, name, IMAGE_FILE_MAX)
            except (NotFound, InvalidRequest):
                continue  # vanished, swapped for a symlink, or too big: not an image to show
            if _looks_like_image(data):
                images.append(data)
        return images

    async def read_file(self, key: str, name: str, max_bytes: int = 512 << 20) -> bytes:
        """Bytes of /mnt/data/<name>; NotFound for a missing session, symlink, FIFO or non-file."""
        session = self._sessions.get(key)
        if session is None:
            raise NotFound(f"no sandbox session for {key!r}")
        return await asyncio.to_thread(datadir.read_file, session.data_dir, name, max_bytes)


def _join(first: str, second: str) -> str:
    if not first:
        return second
    return first + ("" if first.endswith("\n") else "\n") + second


def _looks_like_image(data: bytes) -> bool:
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or data.startswith((b"GIF87a", b"GIF89a"))
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )
