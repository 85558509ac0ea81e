"""Ray fleet spike: what a Ray node costs, how fast a dead node is noticed, whether the sandbox runs
inside an actor, and whether a wrong auth token is refused.

Run as `.venv/bin/python bench/ray_spike.py [--trials N] [--json PATH]` (as root, like a real node).
It starts its own clusters on loopback (node IP 127.0.0.2, a free GCS port, a random token, its own
--temp-dir) and kills only what it started: `ray stop` would stop every Ray cluster on the machine,
so each `ray start` runs in a new session and its process group (plus descendants) is killed by pid.
Prints a markdown table of medians, then each trial's raw numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
NODE_IP = "127.0.0.2"  # loopback that Ray keeps (it rewrites 127.0.0.1 to the host's external IP)
WORKER_PORTS = (10002, 19999)  # Ray's default worker port range: no other port of ours may fall in it
FAST_HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
HOLD_S = 10.0
NOTICE_TIMEOUT_S = 120.0
CELLS = ("import numpy; print(6*7)", "x = sum(range(10)); print(x)")


# --- processes -------------------------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, int]]:
    """pid → (ppid, pgid) of every process now."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm may hold spaces or parentheses: fields start after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def descendants(roots: Iterable[int], table: dict[int, tuple[int, int]] | None = None) -> set[int]:
    table = table if table is not None else _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def group_tree(pgid: int) -> set[int]:
    """A node's processes: `ray start` daemonizes its children (ppid 1) but they keep its process group,
    and the raylet's workers are its children."""
    table = _proc_table()
    return descendants([pid for pid, (_, group) in table.items() if group == pgid], table)


def pss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind((NODE_IP, 0))
            port = int(sock.getsockname()[1])
        if not WORKER_PORTS[0] <= port <= WORKER_PORTS[1]:
            return port


# --- cluster ---------------------------------------------------------------------------------------
@dataclass
class Node:
    pgid: int
    start_s: float
    node_id: str = ""
    raylet_pid: int = 0


@dataclass
class Cluster:
    system_config: dict[str, int] | None
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp")))
    port: int = field(default_factory=free_port)
    # Ray reads RAY_AUTH_MODE when it is imported: the parent sets both before this process starts.
    token: str = field(default_factory=lambda: os.environ["RAY_AUTH_TOKEN"])
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.port}"

    def env(self, token: str | None = None) -> dict[str, str]:
        return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or self.token}

    def _start(self, args: list[str]) -> Node:
        common = ["--node-ip-address", NODE_IP, "--disable-usage-stats", "--temp-dir", str(self.temp_dir)]
        # The agent's HTTP port is fixed (52365) by default: two nodes on one host would collide.
        common += ["--dashboard-agent-listen-port", str(free_port())]
        started = time.monotonic()
        proc = subprocess.Popen(
            [RAY, "start", *args, *common],
            env=self.env(),
            start_new_session=True,  # its daemons keep this process group: how we find and kill them
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        node = Node(pgid=proc.pid, start_s=0.0)
        self.nodes.append(node)
        out, _ = proc.communicate(timeout=120)
        node.start_s = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out}")
        for pid in group_tree(node.pgid):
            args_of = cmdline(pid)
            if args_of and args_of[0].endswith("/raylet"):
                node.raylet_pid = pid
                node.node_id = next(a.split("=", 1)[1] for a in args_of if a.startswith("--node_id="))
        return node

    def start_head(self) -> Node:
        args = ["--head", "--port", str(self.port), "--num-cpus", "0", "--include-dashboard=false"]
        args += ["--ray-client-server-port", str(free_port())]
        if self.system_config:
            args += ["--system-config", json.dumps(self.system_config)]
        return self._start(args)

    def add_worker(self) -> Node:
        args = ["--address", self.address, "--num-cpus", "2", "--resources", '{"agentbox_node": 1}']
        return self._start(args)

    def connect(self) -> None:
        ray.init(address=self.address, _node_ip_address=NODE_IP, logging_level="ERROR", log_to_driver=False)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            ray.shutdown()
        for node in self.nodes:
            kill(group_tree(node.pgid))
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the actor -------------------------------------------------------------------------------------
@ray.remote(num_cpus=0, max_restarts=0)
class SandboxNode:
    """One node's sandbox host, as the fleet's node actor would be: a started SessionManager."""

    def __init__(self, data_dir: str, runtime_dir: str) -> None:
        from agentbox.config import Settings
        from agentbox.sandbox import SessionManager

        # pool_size 0: the default sizes the pool to the machine's RAM, which would swamp the numbers.
        settings = Settings(data_dir=Path(data_dir), sandbox_runtime=Path(runtime_dir), pool_size=0)
        self.manager = SessionManager(settings.sandbox_config())

    async def start(self) -> dict[str, Any]:
        started = time.monotonic()
        await self.manager.start()
        return {
            "pid": os.getpid(),
            "start_s": time.monotonic() - started,
            "backend": self.manager.backend,
            "template_pid": self.manager.template_pid(),
            "isolation": [list(row) for row in self.manager.isolation_report()],
        }

    async def run_cells(self, cells: list[str]) -> dict[str, Any]:
        results = []
        for code in cells:
            execution = await self.manager.execute("k", code)
            results.append(
                {"status": execution.status.value, "duration_s": execution.duration_s, "logs": execution.logs}
            )
        return {"cells": results, "session_pids": self.manager.session_pids()}

    async def hold(self, seconds: float) -> float:
        await asyncio.sleep(seconds)  # asyncio: a blocking sleep would stall the actor's event loop
        return seconds


# --- measurements ----------------------------------------------------------------------------------
def median_pss(pgid: int, samples: int = 3) -> int:
    values = []
    for _ in range(samples):
        values.append(pss_kib(group_tree(pgid)))
        time.sleep(0.5)
    return int(statistics.median(values))


def settle(seconds: float = 5.0) -> None:
    """Let a fresh node's agents and prestarted workers finish importing before measuring."""
    time.sleep(seconds)


def until(check: Callable[[], bool], timeout_s: float = NOTICE_TIMEOUT_S, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step_s)
    return False


def watch_get(ref: ray.ObjectRef, out: dict[str, Any], prefix: str) -> threading.Thread:
    """ray.get(ref) in a thread; record when (monotonic) and with what it ends."""

    def run() -> None:
        try:
            ray.get(ref, timeout=NOTICE_TIMEOUT_S)
            out[f"{prefix}_exc"] = "returned"
        except Exception as exc:  # the class is the measurement
            out[f"{prefix}_exc"] = f"{type(exc).__module__}.{type(exc).__name__}"
        out[f"{prefix}_at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def node_dead(node_id: str) -> bool:
    return any(n["NodeID"] == node_id and not n["Alive"] for n in ray.nodes())


def trial(cluster: Cluster, index: int, data_root: Path) -> dict[str, Any]:
    """One worker node: its memory idle and with the sandbox actor, two cells, then kill it mid-call."""
    row: dict[str, Any] = {}
    worker = cluster.add_worker()
    row["worker_start_s"] = worker.start_s
    settle()
    row["worker_idle_kib"] = median_pss(worker.pgid)

    data_dir = data_root / f"node{index}"
    actor = SandboxNode.options(  # type: ignore[attr-defined]
        name=f"spike-node-{index}",
        lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(worker.node_id, soft=False),
    ).remote(str(data_dir), str(REPO / ".runtime"))
    started = time.monotonic()
    info = ray.get(actor.start.remote(), timeout=180)
    row["actor_ready_s"] = time.monotonic() - started
    row["manager_start_s"] = info["start_s"]
    row["backend"] = info["backend"]
    row["fork_server"] = info["template_pid"] is not None
    row["isolation"] = info["isolation"]
    settle(2.0)
    row["worker_actor_kib"] = median_pss(worker.pgid)
    cells = ray.get(actor.run_cells.remote(list(CELLS)), timeout=180)
    row["cells"] = cells["cells"]
    row["session_pids"] = cells["session_pids"]
    row["worker_session_kib"] = median_pss(worker.pgid)

    # Kill every Ray process of the node, not the sandbox under the actor: those must die on their own.
    sandbox = descendants([info["pid"]]) - {info["pid"]}
    ray_procs = group_tree(worker.pgid) - sandbox
    in_flight = actor.hold.remote(HOLD_S)
    time.sleep(1.0)  # the call is running on the node
    times: dict[str, Any] = {}
    killed = time.monotonic()
    kill(ray_procs)
    getter = watch_get(in_flight, times, "inflight")
    time.sleep(0.1)
    new_call = watch_get(actor.hold.remote(0.0), times, "newcall")
    row["node_dead_s"] = (
        time.monotonic() - killed if until(lambda: node_dead(worker.node_id), step_s=0.1) else None
    )
    row["died_s"], row["died_exc"] = until_died(actor, killed)
    getter.join(NOTICE_TIMEOUT_S)
    new_call.join(NOTICE_TIMEOUT_S)
    for prefix in ("inflight", "newcall"):
        row[f"{prefix}_exc"] = times.get(f"{prefix}_exc", "no answer")
        at = times.get(f"{prefix}_at")
        row[f"{prefix}_s"] = at - killed if at is not None else None
    wait = 5.0 - (time.monotonic() - killed)
    if wait > 0:
        time.sleep(wait)
    row["sandbox_pids"] = sorted(sandbox)
    row["sandbox_alive_after_5s"] = sorted(pid for pid in sandbox if alive(pid))
    kill(row["sandbox_alive_after_5s"])  # leave nothing behind even if die-with-parent failed
    return row


def until_died(actor: Any, killed: float) -> tuple[float | None, str]:
    """Call the old handle until Ray says the actor is dead, not merely unavailable: when the fleet may
    move the session elsewhere."""
    deadline = killed + NOTICE_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            ray.get(actor.hold.remote(0.0), timeout=max(0.1, deadline - time.monotonic()))
            last = "returned"
        except ray.exceptions.ActorUnavailableError:
            last = "ray.exceptions.ActorUnavailableError"
        except Exception as exc:
            return time.monotonic() - killed, f"{type(exc).__module__}.{type(exc).__name__}"
        time.sleep(0.1)
    return None, last


def wrong_token(cluster: Cluster) -> dict[str, Any]:
    probe = (
        "import sys, time, ray\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    ray.init(address={cluster.address!r}, _node_ip_address={NODE_IP!r}, logging_level='ERROR')\n"
        "    print('CONNECTED', time.monotonic() - t)\n"
        "except BaseException as e:\n"
        "    print('REFUSED', f'{type(e).__module__}.{type(e).__name__}', time.monotonic() - t)\n"
        "    print(str(e)[:300].replace(chr(10), ' '))\n"
    )
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", probe],
            env=cluster.env(token=secrets.token_hex(32)),
            capture_output=True,
            text=True,
            timeout=180,
            start_new_session=True,
        )
        out = proc.stdout.strip().splitlines()
    except subprocess.TimeoutExpired:
        out = ["TIMEOUT after 180 s"]
    lines = [line for line in out if line.startswith(("CONNECTED", "REFUSED", "TIMEOUT"))]
    first = lines[0].split() if lines else ["?"]
    message = out[out.index(lines[0]) + 1] if lines and len(out) > out.index(lines[0]) + 1 else ""
    return {
        "outcome": first[0],
        "exception": first[1] if first[0] == "REFUSED" else "",
        "seconds": float(first[-1]) if first[0] in ("REFUSED", "CONNECTED") else time.monotonic() - started,
        "message": message,
    }


def clean_sandbox_leftovers(data_root: Path) -> None:
    """The killed nodes' session cgroups and /mnt/data mounts outlive them: a manager on the same
    sessions dir sweeps them at start."""
    from agentbox.config import Settings
    from agentbox.sandbox import SessionManager

    async def sweep(data_dir: Path) -> None:
        settings = Settings(
            data_dir=data_dir, sandbox_runtime=REPO / ".runtime", pool_size=0, fork_server=False
        )
        manager = SessionManager(settings.sandbox_config())
        await manager.start()
        await manager.aclose()

    for data_dir in sorted(data_root.glob("node*")):
        try:
            asyncio.run(sweep(data_dir))
        except Exception as exc:
            print(f"warning: could not sweep {data_dir}: {exc}", file=sys.stderr)


def run_config(label: str, system_config: dict[str, int] | None, trials: int) -> dict[str, Any]:
    cluster = Cluster(system_config)
    data_root = Path(tempfile.mkdtemp(prefix="rs-data-", dir="/tmp"))
    result: dict[str, Any] = {"label": label, "trials": []}
    try:
        head = cluster.start_head()
        result["head_start_s"] = head.start_s
        settle()
        result["head_kib"] = median_pss(head.pgid)
        cluster.connect()
        for index in range(trials):
            row = trial(cluster, index, data_root)
            print(
                f"[{label}] trial {index}: {json.dumps({k: v for k, v in row.items() if k != 'isolation'})}"
            )
            result["trials"].append(row)
        result["wrong_token"] = wrong_token(cluster)
    finally:
        cluster.stop()
        clean_sandbox_leftovers(data_root)
        shutil.rmtree(data_root, ignore_errors=True)
    return result


# --- report ----------------------------------------------------------------------------------------
def _med(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "MiB":
        return f"{value / 1024:.0f} MiB"
    return f"{value:.2f} s"


def report(results: list[dict[str, Any]]) -> str:
    labels = [r["label"] for r in results]
    lines = ["| measure (median) | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]

    def add(name: str, cells: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    add("`ray start` head", [_fmt(r["head_start_s"], "s") for r in results])
    add("`ray start` worker", [_fmt(_med(r["trials"], "worker_start_s"), "s") for r in results])
    add("PSS head (--num-cpus 0, idle)", [_fmt(r["head_kib"], "MiB") for r in results])
    add("PSS worker node idle", [_fmt(_med(r["trials"], "worker_idle_kib"), "MiB") for r in results])
    add(
        "PSS worker + SessionManager actor",
        [_fmt(_med(r["trials"], "worker_actor_kib"), "MiB") for r in results],
    )
    add(
        "PSS worker + actor + 1 session",
        [_fmt(_med(r["trials"], "worker_session_kib"), "MiB") for r in results],
    )
    add("actor create + manager.start()", [_fmt(_med(r["trials"], "actor_ready_s"), "s") for r in results])
    for key, name in (
        ("inflight_s", "kill → in-flight ray.get raises"),
        ("node_dead_s", "kill → ray.nodes() Alive False"),
        ("newcall_s", "kill → new call on old handle raises"),
        ("died_s", "kill → old handle raises a non-Unavailable error"),
    ):
        add(name, [_fmt(_med(r["trials"], key), "s") for r in results])
    add(
        "in-flight exception", [" / ".join(sorted({t["inflight_exc"] for t in r["trials"]})) for r in results]
    )
    add("dead-actor exception", [" / ".join(sorted({t["died_exc"] for t in r["trials"]})) for r in results])
    add("new-call exception", [" / ".join(sorted({t["newcall_exc"] for t in r["trials"]})) for r in results])
    add(
        "cell durations (1st, 2nd)",
        [
            " ; ".join(", ".join(f"{c['duration_s']:.3f}" for c in t["cells"]) for t in r["trials"])
            for r in results
        ],
    )
    add(
        "backend / fork server",
        [f"{r['trials'][0]['backend']} / {r['trials'][0]['fork_server']}" for r in results],
    )
    add(
        "sandbox pids alive 5 s after kill",
        [
            str(sum(len(t["sandbox_alive_after_5s"]) for t in r["trials"]))
            + " of "
            + str(sum(len(t["sandbox_pids"]) for t in r["trials"]))
            for r in results
        ],
    )
    add(
        "wrong token",
        ["{outcome} {exception} {seconds:.2f} s".format(**r["wrong_token"]) for r in results],
    )
    return "\n".join(lines)


CONFIGS: dict[str, tuple[str, dict[str, int] | None]] = {
    "default": ("default health check", None),
    "fast": ("health_check period 1000 ms, threshold 3", FAST_HEALTH),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=3, help="worker nodes started and killed per config")
    parser.add_argument("--json", type=Path, help="also write every raw number here")
    parser.add_argument("--config", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.config:  # one config in a process of its own: a driver's auth token is read once per process
        label, system_config = CONFIGS[args.config]
        args.json.write_text(json.dumps(run_config(label, system_config, args.trials)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="rs-out-") as out_dir:
        for name in CONFIGS:
            out = Path(out_dir) / f"{name}.json"
            command = [
                sys.executable,
                __file__,
                "--config",
                name,
                "--trials",
                str(args.trials),
                "--json",
                str(out),
            ]
            env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
            subprocess.run(command, check=True, env=env)
            results.append(json.loads(out.read_text()))
    print(report(results))
    first = results[0]["trials"][0]
    print("\nisolation_report():")
    for name, ok, detail in first["isolation"]:
        print(f"- {name}: {'ok' if ok else 'WEAK'} — {detail}")
    print("\ncells:", json.dumps(first["cells"]), "\nsession_pids:", json.dumps(first["session_pids"]))
    for r in results:
        print(f"wrong token ({r['label']}): {json.dumps(r['wrong_token'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
