"""A throwaway Ray cluster on loopback: a head that runs no sandbox, and sandbox nodes beside it.

Every node is one `ray start --block` in a process group of its own: stopping a node is one signal
to its group (SIGTERM: Ray stops its processes; SIGKILL: the node dies as a machine would), and
nothing is left to a global `ray stop`, which would stop every Ray cluster on the machine.
Nodes use the node IP 127.0.0.2: Ray replaces 127.0.0.1 by the machine's outward address, and
127.0.0.2 is loopback too. Token authentication is on, with a random token; no dashboard.
A sandbox node's environment configures its sessions (fleet/node.py): the caller passes its data
dir, uid range and object store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agentbox import devtools
from agentbox.config import Settings
from agentbox.fleet.address import NODE_RESOURCE
from agentbox.sandbox import SessionManager

NODE_IP = "127.0.0.2"
WORKER_PORTS = range(10002, 20000)
"""Ray's default ports for worker processes; no port of ours may fall in it."""
START_TIMEOUT_S = 120.0
HEALTH_CHECKS = '{"health_check_period_ms": 1000, "health_check_failure_threshold": 3}'
"""A node that stops answering is declared dead after about 3 s, not Ray's 15 (docs/scale-out.md)."""


QUIET = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # SIGTERM first drains a node for Ray Serve, up to 30 s, and a head never finishes draining.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}


def ray_binary() -> str:
    """The `ray` beside this Python (the project's virtual environment)."""
    return str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A free loopback port outside Ray's worker port range."""
    while (port := devtools.free_port()) in WORKER_PORTS:
        pass
    return port


@dataclass
class RayCluster:
    root: Path
    """Ray's temp dir (sessions, logs, sockets) for every node of this cluster. Keep it short: Ray's
    unix sockets live under it, and a socket's path can't pass 107 bytes."""
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = field(default_factory=free_port)
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    """Name ("head", "node-0", …) → its `ray start --block`."""

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.port}"

    @property
    def url(self) -> str:
        """AGENTBOX_FLEET for the replicas."""
        return f"ray://{self.address}"

    def auth_env(self) -> dict[str, str]:
        """What a process that talks to the cluster needs in its environment."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def start_head(self) -> None:
        self._start(
            "head",
            [
                "--head",
                "--port",
                str(self.port),
                "--num-cpus",
                "0",
                "--include-dashboard=false",
                "--ray-client-server-port",
                str(free_port()),
                "--system-config",
                HEALTH_CHECKS,
            ],
            {},
        )

    def add_node(
        self, index: int, data_dir: Path, uid_base: int, runtime: Path, env: Mapping[str, str], cpus: int = 2
    ) -> str:
        """Start sandbox node `index`, its sessions in `data_dir` as uids from `uid_base` up (each
        node sharing a machine needs its own), with `env` added to its environment; its name.
        `runtime` must be absolute: a node's workers do not run in the checkout."""
        name = f"node-{index}"
        resources = f'{{"{NODE_RESOURCE}": 1}}'
        node_env = {
            "AGENTBOX_DATA_DIR": str(data_dir),
            "AGENTBOX_SANDBOX_UID_BASE": str(uid_base),
            "AGENTBOX_SANDBOX_RUNTIME": str(runtime),
            **env,
        }
        self._start(
            name,
            ["--address", self.address, "--num-cpus", str(cpus), "--resources", resources],
            node_env,
        )
        return name

    def _start(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        common = ["--node-ip-address", NODE_IP, "--disable-usage-stats", "--temp-dir", str(self.root)]
        # The agent's HTTP port is fixed (52365) by default: two nodes on one machine would collide.
        common += ["--dashboard-agent-listen-port", str(free_port()), "--block"]
        with (self.root / f"{name}.log").open("ab") as log:
            self.nodes[name] = subprocess.Popen(
                [ray_binary(), "start", *args, *common],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, **self.auth_env(), **QUIET},
                start_new_session=True,
            )
        self._wait_started(name)

    def _wait_started(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        log = self.root / f"{name}.log"
        while time.monotonic() < deadline:
            if self.nodes[name].poll() is not None:
                raise RuntimeError(f"ray node {name} exited: {log.read_text(errors='replace')[-2000:]}")
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"ray node {name} did not start in {START_TIMEOUT_S:g} s")

    def kill(self, name: str) -> None:
        """The node dies at once, as when its machine goes away: every process of Ray's, in its
        process group and below it in other groups (Ray's workers start sessions of their own).
        The sandboxes under them are left to die with their parents, as the sandbox promises: only
        root's processes are killed here. Returns once those are gone."""
        process = self.nodes.pop(name)
        doomed = {pid for pid in _descendants_of_group(process.pid) if _uid(pid) == 0}
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in doomed):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray node {name}'s processes outlived SIGKILL for 30 s")
            time.sleep(0.05)

    def stop(self, name: str, timeout_s: float = 30.0) -> None:
        process = self.nodes.pop(name)
        self._signal_process(process, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._signal_process(process, signal.SIGKILL)
            process.wait()
        self._signal_process(process, signal.SIGKILL)  # what it left in its group

    def stop_all(self) -> None:
        for name in [n for n in self.nodes if n != "head"]:
            self.stop(name)
        if "head" in self.nodes:
            self.stop("head")

    @staticmethod
    def _signal_process(process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


async def sweep_node(data_dir: Path, uid_base: int, runtime: Path) -> None:
    """What a sandbox node starting again on `data_dir` does first: remove what its stopped or killed
    sessions left (their cgroups, /mnt/data filesystems). Stopping a Ray node ends its actor without
    a goodbye, so a caller that will not start the node again sweeps with this."""
    settings = Settings(data_dir=data_dir, sandbox_uid_base=uid_base, sandbox_runtime=runtime, pool_size=0)
    manager = SessionManager(settings.sandbox_config())
    await manager.start()
    await manager.aclose()


def _parents() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, process group) of every process, from /proc/PID/stat."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()  # after the command, which may hold spaces
            found[int(entry)] = (int(fields[1]), int(fields[2]))
    return found


def _descendants_of_group(pgid: int) -> set[int]:
    """The processes of the group and all their descendants, from one look at /proc."""
    table = _parents()
    found = {pid for pid, (_, group) in table.items() if group == pgid}
    while True:
        more = {pid for pid, (parent, _) in table.items() if parent in found} - found
        if not more:
            return found
        found |= more


def _uid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), None)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
