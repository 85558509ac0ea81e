"""SessionManager: one sandboxed kernel and one /mnt/data per key (thread), created lazily.

Lifecycle of a session:  (absent) ──execute──▶ live(kernel) ──kernel killed──▶ live(no kernel)
                         ──execute──▶ live(fresh kernel, restarted) ──close──▶ (absent, files gone)
                         live ──idle > session_idle_s or age > session_max_s──▶ (expired: absent,
                         files gone; the key's next execute reports restarted)
configure(key, memory_mb=, idle_s=) sets a key's own memory cap and idle time (a container's): kept
for the key until close(key), applied to its live session at once and to each session it gets later,
new or claimed from the pool (the pooled cgroup's cap is rewritten on claim). touch(key) counts as use.
A warm pool (pool_size) keeps sandboxes started ahead, kernel up and libraries imported, owned by no
key: a new key claims one and only then gets its files. A pooled sandbox never held anyone's data
before it is claimed and is torn down, never reused, when its session ends.
One execution at a time per session (its lock); different sessions run concurrently. The reaper
task (started by start(), cancelled by aclose()) sleeps until the earliest expiry.
Each session runs as the host uid of its slot. A session whose cgroup still holds a process after
the kill (uninterruptible sleep, a hung filesystem) keeps its slot quarantined: the reaper kills
again every QUARANTINE_RETRY_S and frees the slot only once the cgroup is empty, so no new session
ever shares a uid with a process of an old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentbox import metrics
from agentbox.errors import InvalidRequest, NotFound, SandboxError, SandboxUnavailable
from agentbox.sandbox import cgroups, checkpoint, datadir, isolation
from agentbox.sandbox.backend import Backend, LaunchSpec
from agentbox.sandbox.bubblewrap import Bubblewrap
from agentbox.sandbox.config import SandboxConfig
from agentbox.sandbox.execution import CellError, Execution, ExecutionStatus, InputFile
from agentbox.sandbox.forkserver import STUB, ForkServer
from agentbox.sandbox.gvisor import GVisor
from agentbox.sandbox.kernel import Kernel, KernelGone, OutputCallback, Reply

log = logging.getLogger(__name__)

IMAGE_FILE_MAX = 16 << 20
POOL_RETRY_S = 5.0
QUARANTINE_RETRY_S = 2.0
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
EXPIRED_KEYS_KEPT = 10_000
"""Keys whose session expired, remembered so their next execute says variables were lost."""
BACKENDS = ("bubblewrap", "gvisor")


@dataclass(eq=False)
class _Session:
    key: str
    name: str
    data_dir: Path
    uid: int
    slot: int
    cgroup: cgroups.SessionCgroup | None
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    kernel: Kernel | None = None
    kernels_started: int = 0
    lost_reason: str | None = None  # why the next kernel starts without the earlier variables
    placed: set[str] = field(default_factory=set)
    closed: bool = False
    expired: bool = False
    idle_s: float | None = None  # the key's own idle time, else the manager's


@dataclass(frozen=True, slots=True)
class KeySettings:
    """What configure() set for one key; None keeps the manager's setting."""

    memory_mb: int | None = None
    idle_s: float | None = None


def cgroup_group(sessions_dir: Path) -> str:
    """The parent cgroup of a manager's sessions: one per sessions dir, so two managers (a server and
    a test run) never sweep each other's sessions."""
    digest = hashlib.sha256(os.fsencode(sessions_dir.resolve())).hexdigest()[:12]
    return f"agentbox-{digest}"


def make_backend(config: SandboxConfig, group: str) -> Backend:
    if config.backend == "bubblewrap":
        return Bubblewrap()
    if config.backend == "gvisor":
        return GVisor(config.runsc_root / group, config.sessions_dir / ".gvisor")
    raise SandboxUnavailable(f"unknown sandbox backend {config.backend!r}; use one of {', '.join(BACKENDS)}")


class SessionManager:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._sessions: dict[str, _Session] = {}
        self._expired: OrderedDict[str, str] = OrderedDict()
        self._key_settings: dict[str, KeySettings] = {}
        self._free_slots = list(range(config.max_sessions - 1, -1, -1))
        self._quarantine: dict[int, cgroups.SessionCgroup] = {}  # slot → its cgroup that would not empty
        self._quarantine_retry_at = 0.0
        self._registry_lock = asyncio.Lock()
        self._caps: isolation.HostCapabilities | None = None
        self._cgroup_group = cgroup_group(config.sessions_dir)
        self._backend = make_backend(config, self._cgroup_group)
        self._reaper: asyncio.Task[None] | None = None
        self._reaper_wake = asyncio.Event()
        self._pool: list[_Session] = []
        self._pool_filler: asyncio.Task[None] | None = None
        self._pool_wake = asyncio.Event()
        self._demand_starts = 0  # kernels a caller is waiting for; the pool refills only when none are
        self._starting = asyncio.Semaphore(config.concurrent_starts or os.cpu_count() or 1)
        self._forkserver: ForkServer | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check the host's isolation, sweep what a crashed server left behind, start the reaper.

        Raises SandboxUnavailable with a sentence when the full sandbox cannot run and allow_weak is off.
        """
        caps, refusal = await asyncio.to_thread(self._check_host)
        if refusal:
            raise SandboxUnavailable(refusal)
        self._caps = caps
        await asyncio.to_thread(self._prepare_dirs)
        if (
            self._forkserver is None
            and isolation.forked(caps, self._config)
            and isinstance(self._backend, Bubblewrap)
        ):
            # uid_base - 1: an unprivileged uid of its own, next to (never one of) the sessions'.
            forkserver = ForkServer(
                self._config.runtime_dir.resolve(), self._config.start_timeout_s, self._config.uid_base - 1
            )
            await forkserver.start()
            self._forkserver = forkserver
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="agentbox-session-reaper")
        if self._pool_filler is None and self._config.pool_size > 0:
            self._pool_filler = asyncio.create_task(self._fill_pool(), name="agentbox-pool-filler")

    def refusal(self) -> str | None:
        """Why start() would refuse to run on this host, or None. Blocking (probes the backend)."""
        return self._check_host()[1]

    def _check_host(self) -> tuple[isolation.HostCapabilities, str | None]:
        caps = isolation.probe(self._backend)
        reason = isolation.unavailable_reason(caps)
        weak_possible = caps.backend_ok and (caps.root or self._backend.name == "bubblewrap")
        if reason and not (self._config.allow_weak and weak_possible):
            return caps, f"The sandbox cannot start: {reason}"
        return caps, None

    def _prepare_dirs(self) -> None:
        sessions_dir = self._config.sessions_dir
        sessions_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._privileged:
            self._config.stage_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        if self._limits:
            try:
                self._cgroups.prepare()
            except OSError as exc:
                raise SandboxUnavailable(f"cannot delegate the cgroup controllers: {exc}") from exc
            for name, cgroup in self._cgroups.sweep(self._cgroup_group).items():
                slot = _slot_of(name)
                if slot in self._free_slots:  # an earlier server's session, stuck: its uid too
                    self._free_slots.remove(slot)
                    self._hold(slot, cgroup)
        if self._privileged:
            self._backend.sweep()
        self._sweep_session_dirs()

    def _sweep_session_dirs(self) -> None:
        sessions_dir = self._config.sessions_dir
        if not sessions_dir.is_dir():
            return
        for mount_point in datadir.mounts_under(sessions_dir):
            datadir.remove_session_fs(mount_point)
        for entry in sessions_dir.iterdir():
            datadir.remove_session_fs(entry)

    async def aclose(self) -> None:
        """Stop the reaper and the pool, kill every session, unmount and remove its files."""
        for task in (self._reaper, self._pool_filler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reaper = self._pool_filler = None
        pooled, self._pool = self._pool, []
        await asyncio.gather(*(self._teardown(session) for session in pooled))
        await asyncio.gather(*(self.close(key) for key in list(self._sessions)))
        if self._forkserver is not None:
            await self._forkserver.aclose()
            self._forkserver = None
        if self._limits:
            # A session cgroup still busy when its teardown gave up (a sandbox slow to exit) would
            # otherwise outlive the server: kill and remove what is left, then the group.
            await asyncio.to_thread(self._cgroups.sweep, self._cgroup_group)
            await asyncio.to_thread(self._cgroups.remove_group, self._cgroup_group)
        # Still stuck ones stay in the cgroup tree; the next start()'s sweep quarantines them again.
        self._free_slots.extend(self._quarantine)
        self._quarantine.clear()
        if self._privileged:
            await asyncio.to_thread(self._backend.sweep)
        # A session a cancelled request was still creating is not in any list: leave no mount.
        await asyncio.to_thread(self._sweep_session_dirs)

    @property
    def _privileged(self) -> bool:
        """Sessions run as their own host uid on their own tmpfs (root server, tools present)."""
        return self._caps is not None and self._caps.privileged

    @property
    def _limits(self) -> bool:
        """Sessions get cgroups (limits and the cgroup kill path)."""
        return self._caps is not None and self._caps.limits

    @property
    def _cgroups(self) -> cgroups.Hierarchy:
        assert self._caps is not None
        return self._caps.cgroups

    @property
    def backend(self) -> str:
        return self._backend.name

    def has_session(self, key: str) -> bool:
        return key in self._sessions

    def memory_limit(self, key: str) -> int | None:
        """The memory cap in bytes of the key's live session's cgroup; None without either."""
        session = self._sessions.get(key)
        if session is None or session.cgroup is None:
            return None
        return session.cgroup.memory_limit()

    def isolation_report(self) -> list[tuple[str, bool, str]]:
        caps = self._caps or isolation.probe(self._backend)
        return isolation.report(caps, self._config)

    # --- expiry -------------------------------------------------------------------------------
    def _expiry(self, session: _Session) -> tuple[float, str]:
        cfg = self._config
        idle_s = session.idle_s if session.idle_s is not None else cfg.session_idle_s
        idle_at = session.last_used + idle_s
        max_at = session.created + cfg.session_max_s
        if idle_at <= max_at:
            return idle_at, f"the session was idle for more than {idle_s:g} s"
        return max_at, f"the session reached its maximum age of {cfg.session_max_s:g} s"

    async def _reap(self) -> None:
        """Tear down sessions past their idle or total lifetime; busy ones when their cell ends."""
        while True:
            now = time.monotonic()
            wake_at = now + self._config.session_idle_s
            if self._quarantine:
                if now >= self._quarantine_retry_at:
                    await self._release_quarantined()
                    self._quarantine_retry_at = now + QUARANTINE_RETRY_S
                wake_at = min(wake_at, self._quarantine_retry_at)
            for session in list(self._sessions.values()):
                if session.lock.locked():
                    continue  # execute() wakes us when it is done
                at, reason = self._expiry(session)
                if at <= now:
                    await self._expire(session, reason)
                else:
                    wake_at = min(wake_at, at)
            self._reaper_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wake_at - time.monotonic(), 0.01)):
                    await self._reaper_wake.wait()

    async def _expire(self, session: _Session, reason: str) -> None:
        async with self._registry_lock:
            if self._sessions.get(session.key) is not session or session.lock.locked():
                return
            del self._sessions[session.key]
            self._expired[session.key] = reason
            while len(self._expired) > EXPIRED_KEYS_KEPT:
                self._expired.popitem(last=False)
        session.expired = True
        await self._teardown(session)

    # --- sessions -----------------------------------------------------------------------------
    async def _session(self, key: str) -> _Session:
        if self._caps is None:
            raise SandboxError("SessionManager.start() has not been called")
        async with self._registry_lock:
            session = self._sessions.get(key)
            if session is None:
                session = await self._claim_pooled(key) or await self._new_session(key)
                session.idle_s = self._key_settings.get(key, KeySettings()).idle_s
                session.lost_reason = self._expired.pop(key, None)
                self._sessions[key] = session
                self._reaper_wake.set()
            return session

    async def _claim_pooled(self, key: str) -> _Session | None:
        while self._pool:
            session = self._pool.pop(0)
            self._pool_wake.set()
            if session.kernel is None or not session.kernel.alive:
                await self._teardown(session)  # died while waiting: never handed out
                continue
            memory_mb = self._key_settings.get(key, KeySettings()).memory_mb
            if memory_mb is not None and session.cgroup is not None:
                try:
                    await asyncio.to_thread(session.cgroup.set_memory, memory_mb)
                except OSError as exc:
                    log.warning("could not give a pooled sandbox %d MiB: %s", memory_mb, exc)
                    await self._teardown(session)  # never handed out with the wrong cap
                    continue
            session.key = key
            session.created = session.last_used = time.monotonic()
            return session
        return None

    async def _new_session(self, key: str) -> _Session:
        """A fresh session (dir, fs, cgroups; its kernel starts on first use). Names are never reused,
        so a new session need not wait for an old one of the same key to finish unmounting."""
        if not self._free_slots:
            held = (
                f" ({len(self._quarantine)} held until processes that would not die have exited)"
                if self._quarantine
                else ""
            )
            raise SandboxUnavailable(f"all {self._config.max_sessions} sandbox sessions are in use{held}")
        slot = self._free_slots.pop()
        uid = self._config.uid_base + slot
        name = f"s{slot}-{secrets.token_hex(6)}"
        session = _Session(key, name, self._config.sessions_dir / name, uid, slot, None)
        memory_mb = self._key_settings.get(key, KeySettings()).memory_mb or self._config.memory_mb
        creating = asyncio.ensure_future(asyncio.to_thread(self._create_session, session, memory_mb))
        try:
            await asyncio.shield(creating)
        except asyncio.CancelledError:
            await asyncio.shield(self._discard_when_created(creating, session))
            raise
        except BaseException:
            self._free_slots.append(slot)
            raise
        return session

    async def _discard_when_created(self, creating: asyncio.Future[None], session: _Session) -> None:
        """Cancelling does not stop the thread that mounts a session's fs and makes its cgroup (a
        server shutting down mid-start): wait for it, then undo what it made, so nothing outlives us."""
        try:
            await creating
        except Exception:
            self._free_slots.append(session.slot)  # it failed and removed its own half
            return
        await self._teardown(session)

    async def _fill_pool(self) -> None:
        """Keep pool_size sandboxes started ahead; back off when starting one fails."""
        while True:
            self._pool_wake.clear()
            if self._demand_starts:
                # A burst outran the pool: its own starts go first, the refill after them.
                await self._pool_wake.wait()
                continue
            if len(self._pool) < self._config.pool_size and self._free_slots:
                try:
                    async with self._registry_lock:
                        session = await self._new_session("")
                    try:
                        await self._ensure_kernel(session, for_pool=True)
                    except BaseException:
                        # Not in the pool yet, so aclose() can't see it: remove it here, even on cancel.
                        await asyncio.shield(self._teardown(session))
                        raise
                except (SandboxError, OSError) as exc:
                    log.warning("could not start a pooled sandbox: %s", exc)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POOL_RETRY_S):
                            await self._pool_wake.wait()
                    continue
                self._pool.append(session)
                continue
            await self._pool_wake.wait()

    def template_pid(self) -> int | None:
        """The fork server's template process, when kernels are forked (its memory is shared)."""
        return self._forkserver.pid if self._forkserver is not None else None

    def session_pids(self) -> dict[str, list[int]]:
        """The host pids of each live or pooled session, read from its cgroup (none without cgroups)."""
        sessions = [*self._sessions.values(), *self._pool]
        return {s.name: s.cgroup.pids() for s in sessions if s.cgroup is not None}

    def pool_statistics(self) -> dict[str, int]:
        return {
            "ready": len(self._pool),
            "target": self._config.pool_size,
            "live": len(self._sessions),
            "quarantined": len(self._quarantine),
        }

    def _create_session(self, session: _Session, memory_mb: int) -> None:
        cfg = self._config
        if self._privileged:
            datadir.mount_session_fs(
                session.data_dir, session.name, cfg.session_disk_mb, session.uid, cfg.session_inodes
            )
        if self._limits:
            session.cgroup = self._cgroups.session(self._cgroup_group, session.name)
            try:
                session.cgroup.create(memory_mb, self._backend.host_pids_max(cfg.pids_max), cfg.cpus)
            except OSError as exc:
                session.cgroup.remove()
                datadir.remove_session_fs(session.data_dir)
                raise SandboxError(f"cannot create the session's cgroups: {exc.strerror}") from exc
        if not self._privileged:
            datadir.make_plain_dir(session.data_dir, None)

    async def configure(self, key: str, *, memory_mb: int | None = None, idle_s: float | None = None) -> None:
        """Give the key its own memory cap (MiB) and idle time (s), None keeping the manager's: for
        its live session now and every later one, until close(key). SandboxError when the kernel
        refuses the cap for the live session (below what it already uses)."""
        settings = KeySettings(memory_mb, idle_s)
        async with self._registry_lock:
            previous = self._key_settings.get(key, KeySettings())
            self._key_settings[key] = settings
            session = self._sessions.get(key)
            if session is None:
                return
            session.idle_s = idle_s
            self._reaper_wake.set()
            if session.cgroup is None or memory_mb == previous.memory_mb:
                return
            try:
                await asyncio.to_thread(session.cgroup.set_memory, memory_mb or self._config.memory_mb)
            except OSError as exc:
                raise SandboxError(f"cannot set the session's memory limit: {exc.strerror}") from exc

    def touch(self, key: str) -> None:
        """Count now as a use of the key's live session (its idle time starts again)."""
        session = self._sessions.get(key)
        if session is not None:
            session.last_used = time.monotonic()

    async def close(self, key: str) -> None:
        """Kill the session's kernel and drop the session with its files, and forget the key's
        settings; unknown keys are fine."""
        async with self._registry_lock:
            session = self._sessions.pop(key, None)
            self._expired.pop(key, None)
            self._key_settings.pop(key, None)
            if session is None:
                return
        await self._teardown(session)

    async def _teardown(self, session: _Session) -> None:
        """Kill and remove a session already taken out of the registry (or the pool)."""
        session.closed = True
        if session.kernel is not None:
            await session.kernel.kill()  # a running execute() then ends as KILLED at once
        async with session.lock:
            emptied = await asyncio.to_thread(self._remove_session, session)
        if emptied or session.cgroup is None:
            self._free_slots.append(session.slot)
        else:
            self._hold(session.slot, session.cgroup)

    def _remove_session(self, session: _Session) -> bool:
        """Kill its processes, remove its cgroup and files; False when a process would not die (its
        cgroup then stays, for the quarantine to retry)."""
        emptied = True
        if session.cgroup is not None:
            emptied = session.cgroup.kill()
            if emptied:
                session.cgroup.remove()
        datadir.remove_session_fs(session.data_dir)
        return emptied

    # --- quarantine ---------------------------------------------------------------------------
    def _hold(self, slot: int, cgroup: cgroups.SessionCgroup) -> None:
        """Keep the slot (its uid) out of use until its cgroup is empty."""
        log.warning(
            "uid %d: processes %s of a finished session would not die; the uid is not reused until they have",
            self._config.uid_base + slot,
            cgroup.pids(),
        )
        self._quarantine[slot] = cgroup
        self._quarantine_retry_at = time.monotonic() + QUARANTINE_RETRY_S
        self._reaper_wake.set()

    async def _release_quarantined(self) -> None:
        for slot, cgroup in list(self._quarantine.items()):
            if await asyncio.to_thread(_kill_and_remove, cgroup):
                del self._quarantine[slot]
                self._free_slots.append(slot)
                log.info(
                    "uid %d: the stuck processes are gone; the uid is in use again",
                    self._config.uid_base + slot,
                )

    # --- kernels ------------------------------------------------------------------------------
    async def _ensure_kernel(self, session: _Session, for_pool: bool = False) -> tuple[Kernel, bool]:
        if session.kernel is not None and session.kernel.alive:
            return session.kernel, False
        # Starts queue here rather than all at once: fifty sandboxes starting together on two cores
        # would each take long enough to hit the start timeout (gVisor did, 48 of 50).
        demand = 0 if for_pool else 1
        self._demand_starts += demand
        try:
            async with self._starting:
                started = await self._start_kernel(session)
        except Exception:
            metrics.SANDBOX_START_FAILURES.inc()
            raise
        finally:
            self._demand_starts -= demand
            if demand and not self._demand_starts:
                self._pool_wake.set()
        metrics.SANDBOX_STARTS.labels("pool" if for_pool else "cell").inc()
        return started

    async def _start_kernel(self, session: _Session) -> tuple[Kernel, bool]:
        if session.kernel is not None:
            await session.kernel.kill()
        cfg = self._config
        spec = LaunchSpec(
            name=session.name,
            generation=session.kernels_started,
            stage_dir=cfg.stage_dir,
            runtime_dir=cfg.runtime_dir.resolve(),
            data_dir=session.data_dir,
            uid=session.uid,
            cgroup_procs=tuple(session.cgroup.procs_files) if session.cgroup else (),
            tmp_bytes=cfg.tmp_size_mb << 20,
            fsize_bytes=cfg.session_disk_mb << 20,
            nproc=cfg.pids_max,
            nofile=cfg.nofile,
            output_limit=cfg.output_limit_bytes,
            max_images=cfg.max_images_per_cell,
        )
        backend = self._backend
        forkserver = self._forkserver
        if forkserver is not None and isinstance(backend, Bubblewrap):
            launch = await asyncio.to_thread(backend.prepare, spec, self._privileged, STUB)
        else:
            launch = await asyncio.to_thread(backend.prepare, spec, self._privileged)
        oom_baseline = await asyncio.to_thread(session.cgroup.oom_kills) if session.cgroup else 0

        async def kill_tree(spare: tuple[int, ...]) -> bool:
            cg = session.cgroup
            if cg is None:  # weak mode: the backend's own kill path is all we have
                await asyncio.to_thread(backend.kill_without_cgroup, spare[0])
            else:
                await asyncio.to_thread(cg.kill, spare if backend.spare_outer else ())
            await asyncio.to_thread(backend.release, spec)
            return cg is not None and await asyncio.to_thread(cg.oom_kills) > oom_baseline

        try:
            if forkserver is not None:
                kernel = await forkserver.start_kernel(
                    spec, launch, start_timeout_s=cfg.start_timeout_s, kill_tree=kill_tree
                )
            else:
                kernel = await Kernel.start(
                    launch.argv,
                    max_images=cfg.max_images_per_cell,
                    output_limit=cfg.output_limit_bytes,
                    start_timeout_s=cfg.start_timeout_s,
                    kill_tree=kill_tree,
                    pass_fds=launch.pass_fds,
                )
        finally:
            launch.close()
        restarted = session.kernels_started > 0
        session.kernels_started += 1
        session.kernel = kernel
        return kernel, restarted

    # --- the engine's calls -------------------------------------------------------------------
    async def execute(
        self,
        key: str,
        code: str,
        files: Sequence[InputFile] = (),
        *,
        timeout_s: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> Execution:
        """Run one cell in the key's session (created on first use) after placing new input files;
        timeout_s overrides the configured cell timeout, on_output hears its output as it is written.

        Raises SandboxUnavailable when no kernel can be started, SandboxError when a file cannot be
        placed or the session was closed meanwhile; a cell's own failures (error, timeout, crash, OOM)
        are an Execution, not an exception.
        """
        started = time.monotonic()
        while True:
            session = await self._session(key)
            async with session.lock:
                if session.expired:
                    continue  # expired while we waited for it: the next session starts fresh
                if session.closed:
                    raise SandboxError("the session was closed while this execution waited")
                try:
                    return await self._execute(session, code, files, started, timeout_s, on_output)
                finally:
                    session.last_used = time.monotonic()
                    self._reaper_wake.set()

    async def interrupt(self, key: str) -> bool:
        """Stop the key's running cell (it ends INTERRUPTED, state kept; one that will not stop is
        killed after the interrupt grace). False when no cell of the key is running."""
        session = self._sessions.get(key)
        if session is None or session.kernel is None or not session.kernel.alive:
            return False
        return await session.kernel.interrupt(self._config.interrupt_grace_s)

    async def _execute(
        self,
        session: _Session,
        code: str,
        files: Sequence[InputFile],
        started: float,
        timeout_s: float | None,
        on_output: OutputCallback | None,
    ) -> Execution:
        await self._place(session, files)
        kernel, restarted = await self._ensure_kernel(session)
        restarted = restarted or session.lost_reason is not None  # a pooled kernel for an expired key
        lost_reason = session.lost_reason if restarted else None
        session.lost_reason = None
        before = await asyncio.to_thread(datadir.snapshot, session.data_dir)
        cfg = self._config
        timeout = timeout_s if timeout_s is not None else cfg.exec_timeout_s
        images: list[bytes] = []
        oom = False
        stdout = stderr = ""
        truncated = False
        error: CellError | None = None
        try:
            reply = await kernel.run(code, timeout, cfg.interrupt_grace_s, on_output)
        except KernelGone as gone:
            session.kernel = None
            session.lost_reason = gone.reason
            status, logs, oom = ExecutionStatus.KILLED, _join(gone.output, gone.reason), gone.oom
            stdout, stderr = gone.stdout, gone.stderr
            error = CellError("SessionKilled", gone.reason, "")
            metrics.SANDBOX_KILLS.inc()
            if oom:
                metrics.SANDBOX_OOMS.inc()
        else:
            status, logs, images = self._outcome(reply, timeout)
            stdout, stderr = reply.stdout, reply.stderr
            truncated = reply.output_bytes > cfg.output_limit_bytes
            if reply.error_name is not None:
                error = CellError(reply.error_name, reply.error_value or "", reply.traceback or "")
        after = await asyncio.to_thread(datadir.snapshot, session.data_dir)
        changed = datadir.changed(before, after)
        image_files: list[str] = []
        if not images:
            found = await asyncio.to_thread(self._image_files, session.data_dir, changed)
            image_files, images = [name for name, _ in found], [data for _, data in found]
        metrics.CELL_SECONDS.labels(status.value).observe(time.monotonic() - started)
        return Execution(
            status=status,
            logs=logs,
            images=tuple(images),
            image_files=tuple(image_files),
            changed_files=changed,
            restarted=restarted,
            duration_s=time.monotonic() - started,
            oom=oom,
            state_lost_reason=lost_reason,
            stdout=stdout,
            stderr=stderr,
            output_truncated=truncated,
            error=error,
        )

    def _outcome(self, reply: Reply, timeout_s: float) -> tuple[ExecutionStatus, str, list[bytes]]:
        limit = self._config.output_limit_bytes
        logs = reply.output
        if reply.output_bytes > limit:
            logs += f"\n[output truncated: {reply.output_bytes} bytes in total, first {limit} shown]\n"
        if reply.traceback:
            logs = _join(logs, reply.traceback)
        if reply.interrupted:
            sentence = (
                f"Execution interrupted: the cell ran past {timeout_s:g} s; variables and files were kept."
            )
            return ExecutionStatus.TIMEOUT, _join(logs, sentence), reply.images
        if reply.stopped:
            sentence = "Execution interrupted on request; variables and files were kept."
            return ExecutionStatus.INTERRUPTED, _join(logs, sentence), reply.images
        status = ExecutionStatus.OK if reply.status == "ok" else ExecutionStatus.ERROR
        return status, logs, reply.images

    async def _place(self, session: _Session, files: Sequence[InputFile]) -> None:
        uid = session.uid if self._privileged else None
        for file in files:
            if file.file_id in session.placed:
                continue
            await asyncio.to_thread(datadir.place_file, session.data_dir, file.name, file.source, uid)
            session.placed.add(file.file_id)

    def _image_files(self, data_dir: Path, changed: tuple[str, ...]) -> list[tuple[str, bytes]]:
        """(name, bytes) of each changed file that is an image, up to the per-cell cap."""
        images: list[tuple[str, bytes]] = []
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
                images.append((name, data))
        return images

    async def copy_file_out(self, key: str, name: str, target: Path, max_bytes: int = 512 << 20) -> int:
        """Copy /mnt/data/<name> to the new host file `target` (sendfile: never whole in memory); its
        size. NotFound for a missing session, symlink, FIFO or non-file; InvalidRequest past max_bytes."""
        session = self._sessions.get(key)
        if session is None:
            raise NotFound(f"no sandbox session for {key!r}")
        return await asyncio.to_thread(datadir.copy_out, session.data_dir, name, target, max_bytes)

    async def archive(self, key: str, target: Path, max_bytes: int) -> int:
        """Tar the key's live session's /mnt/data (regular files and directories, no link followed)
        into the new host file `target`; its size. Taken under the session's lock, so no cell of the
        key runs meanwhile. NotFound without a live session; ArchiveTooLarge past max_bytes."""
        session = self._sessions.get(key)
        if session is None:
            raise NotFound(f"no sandbox session for {key!r}")
        async with session.lock:
            if session.closed or session.expired:
                raise NotFound(f"no sandbox session for {key!r}")
            return await asyncio.to_thread(checkpoint.pack, session.data_dir, target, max_bytes)

    async def data_snapshot(self, key: str) -> datadir.Snapshot:
        """The regular files in the key's /mnt/data with their size, mtime and inode (datadir.snapshot):
        equal snapshots mean an archive taken then would hold the same files. NotFound: no session."""
        session = self._sessions.get(key)
        if session is None:
            raise NotFound(f"no sandbox session for {key!r}")
        return await asyncio.to_thread(datadir.snapshot, session.data_dir)

    async def restore(self, key: str, archive: Path, reason: str) -> int:
        """Unpack an archive() of another node into the key's session (made when absent), owned by
        the session's uid; the key's next execute reports restarted with `reason` as why its
        variables were lost. The number of files restored."""
        while True:
            session = await self._session(key)
            async with session.lock:
                if session.expired:
                    continue  # expired while we waited for it: restore into the next one
                if session.closed:
                    raise SandboxError("the session was closed while its files were being restored")
                session.lost_reason = reason  # set first: a half-done restore has lost state too
                uid = session.uid if self._privileged else None
                try:
                    return await asyncio.to_thread(checkpoint.unpack, session.data_dir, archive, uid)
                finally:
                    session.last_used = time.monotonic()
                    self._reaper_wake.set()

    async def remove_file(self, key: str, name: str) -> bool:
        """Delete /mnt/data/<name> of the key's live session (no symlink on the way is followed; a
        symlink there is itself removed); whether something was removed. No session: False."""
        session = self._sessions.get(key)
        if session is None:
            return False
        return await asyncio.to_thread(datadir.remove_file, session.data_dir, name)


def _kill_and_remove(cgroup: cgroups.SessionCgroup) -> bool:
    """One more kill of a quarantined cgroup, without waiting; rmdir and True once it is empty."""
    if not cgroup.kill(wait_s=0.0):
        return False
    cgroup.remove()
    return True


def _slot_of(name: str) -> int | None:
    """The slot in a session's name (s<slot>-<random>), None for another name."""
    head = name.partition("-")[0]
    return int(head[1:]) if head.startswith("s") and head[1:].isdigit() else None


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
