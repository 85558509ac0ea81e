"""`scripts/dev-cluster`: a cluster on one machine, all on loopback: a PostgreSQL, an S3 store
(Swift) with one bucket, and M `agentbox serve` replicas that share both (AGENTBOX_DATABASE_URL,
AGENTBOX_BLOB_URL), each with a data dir of its own. With --nodes N, a Ray cluster too (a head and
N sandbox nodes, devtools/ray_cluster.py): the replicas run no sandbox but send every session to
the nodes (AGENTBOX_FLEET and Ray's token in their environment).

    scripts/dev-cluster up [--replicas M] [--nodes N]   start it; print each replica's base URL
    scripts/dev-cluster status                          each replica's base URL, one a line
    scripts/dev-cluster down                            stop everything `up` started

Every process runs in a session of its own, so it outlives `up`. What `down` needs is in the state
directory (`.dev-cluster/` in the checkout, or $AGENTBOX_DEV_CLUSTER_DIR): cluster.json (each
process's pid and start time, the temporary directories) and logs/, one log per process. Replicas
get the caller's environment (AGENTBOX_API_KEYS, the model endpoint, any other AGENTBOX_* setting)
with the cluster's database, bucket and data dirs in place of any the caller set; without
AGENTBOX_API_KEYS they share a key generated once into the state directory (api_key). Sandbox nodes
get the caller's AGENTBOX_* settings too, with a data dir and a uid range each, and the bucket.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentbox.devtools import READY, free_port, postgres, swift
from agentbox.devtools.ray_cluster import RayCluster

REPO = Path(sys.prefix).parent
"""The checkout whose .venv runs this (scripts/dev-cluster runs .venv/bin/python)."""
STATE_DIR_ENV = "AGENTBOX_DEV_CLUSTER_DIR"
DATABASE = BUCKET = "agentbox"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
POSTGRES, SWIFT, RAY_HEAD, RAY_NODE, REPLICA = 0, 1, 2, 3, 4
"""Tiers: started in this order, stopped in the reverse one."""
NODE_UID_BASE = 1_500_000
NODE_UID_SPAN = 10_000
"""Node i's sessions run as uids NODE_UID_BASE + i*NODE_UID_SPAN and up: no two nodes share a uid."""


class ClusterError(Exception):
    """What went wrong, as one sentence for the user (and a log's tail when a process failed)."""


@dataclass
class Process:
    name: str
    pid: int
    started: int
    """/proc/PID/stat's start time: a pid the kernel has since given to another process differs."""
    tier: int
    stop_signal: int
    url: str = ""
    """A replica's base URL."""
    group: bool = False
    """The stop signal goes to the whole process group (a Ray node: `ray start --block` and the
    raylet, workers and sessions it started), not only to the leader."""

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.started and stat[0] not in "ZX"


@dataclass
class Cluster:
    temp_dirs: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    database_url: str = ""
    blob_url: str = ""
    fleet_url: str = ""
    """AGENTBOX_FLEET of the replicas; empty without Ray nodes."""

    @property
    def replicas(self) -> list[Process]:
        return [p for p in self.processes if p.tier == REPLICA]

    @property
    def nodes(self) -> list[Process]:
        return [p for p in self.processes if p.tier in (RAY_HEAD, RAY_NODE)]


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and start time; None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return fields[0], int(fields[19])


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.file = root / "cluster.json"
        self.logs = root / "logs"
        self.api_key = root / "api_key"
        self.ray_token = root / "ray_token"

    def load(self) -> Cluster | None:
        try:
            data: dict[str, Any] = json.loads(self.file.read_text())
        except FileNotFoundError:
            return None
        processes = [Process(**p) for p in data.pop("processes")]
        return Cluster(processes=processes, **data)

    def save(self, cluster: Cluster) -> None:
        partial = self.file.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(cluster), indent=2) + "\n")
        partial.replace(self.file)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.log(name).read_text(errors="replace")
        except OSError:
            return ""
        return "".join(text.splitlines(keepends=True)[-lines:])


class Starter:
    """Starts the cluster's processes, recording each in the state file as soon as it runs, so
    that `down` finds whatever `up` left behind, even a half-started cluster."""

    def __init__(self, state: StateDir, cluster: Cluster) -> None:
        self.state = state
        self.cluster = cluster
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def temp_dir(self, path: Path) -> Path:
        self.cluster.temp_dirs.append(str(path))
        self.state.save(self.cluster)
        return path

    def spawn(self, name: str, argv: Sequence[str], tier: int, stop_signal: int, **popen: Any) -> None:
        with self.state.log(name).open("wb") as log:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        stat = _stat(child.pid)
        assert stat is not None, "a child not yet waited for has a /proc entry"
        self.children[name] = child
        self.cluster.processes.append(Process(name, child.pid, stat[1], tier, stop_signal))
        self.state.save(self.cluster)

    def adopt(self, name: str, child: subprocess.Popen[bytes], tier: int, log: Path) -> None:
        """Record a process someone else started in a session of its own (a Ray node): `down`
        stops its whole group. Its log stays where it is, linked from logs/."""
        stat = _stat(child.pid)
        if stat is None:  # already reaped: nothing to stop
            return
        self.state.log(name).symlink_to(log)
        self.cluster.processes.append(Process(name, child.pid, stat[1], tier, signal.SIGTERM, group=True))
        self.state.save(self.cluster)

    def wait_for_lines(self, names: Sequence[str], ready: re.Pattern[str], timeout_s: float) -> list[str]:
        """Each process's first match of `ready` in its log (group 1, else the whole match)."""
        deadline = time.monotonic() + timeout_s
        found: dict[str, str] = {}
        while len(found) < len(names):
            for name in names:
                if name in found:
                    continue
                if match := ready.search(self.state.log(name).read_text(errors="replace")):
                    found[name] = match.group(1) if match.re.groups else match.group(0)
                elif (code := self.children[name].poll()) is not None:
                    raise ClusterError(f"{name} exited with status {code}:\n{self.state.tail(name)}")
                elif time.monotonic() > deadline:
                    raise ClusterError(f"{name} did not start in {timeout_s:g} s:\n{self.state.tail(name)}")
            time.sleep(0.05)
        return [found[name] for name in names]


def up(state: StateDir, replicas: int, nodes: int = 0) -> Cluster:
    if state.load() is not None:
        raise ClusterError(f"a cluster is already up ({state.file}): `status` lists it, `down` stops it")
    agentbox = REPO / ".venv" / "bin" / "agentbox"
    if not agentbox.exists():
        raise ClusterError(f"{agentbox} is missing: run `make test-setup`")
    state.logs.mkdir(parents=True, exist_ok=True)
    for old in state.logs.glob("*.log"):
        old.unlink()
    state.ray_token.unlink(missing_ok=True)
    cluster = Cluster()
    starter = Starter(state, cluster)
    try:
        _start_postgres(starter)
        endpoint = _start_swift(starter)
        blob_env = swift.blob_env(endpoint, BUCKET)
        cluster.blob_url = blob_env["AGENTBOX_BLOB_URL"]
        shared = {"AGENTBOX_DATABASE_URL": cluster.database_url, **blob_env}
        if nodes:
            shared.update(_start_ray(starter, nodes, blob_env))
        _start_replicas(starter, agentbox, replicas, shared)
    except BaseException:
        stop(cluster)
        state.file.unlink(missing_ok=True)
        raise
    return cluster


def _start_postgres(starter: Starter) -> None:
    try:
        root = starter.temp_dir(postgres.new_root())
        postgres.initdb(root)
    except subprocess.CalledProcessError as error:
        raise ClusterError(f"PostgreSQL's initdb failed:\n{error.stderr.decode(errors='replace')}") from error
    except RuntimeError as error:
        raise ClusterError(str(error)) from error
    except KeyError as error:  # run as root, with no `postgres` user to run the server as
        raise ClusterError("there is no `postgres` user: `make test-setup` installs postgresql") from error
    port = free_port()
    starter.spawn("postgres", postgres.server_argv(root, port), POSTGRES, signal.SIGINT, **postgres.owner())
    starter.wait_for_lines(["postgres"], postgres.READY, START_TIMEOUT_S)
    starter.cluster.database_url = postgres.create_database(port, DATABASE)
    starter.state.save(starter.cluster)


def _start_swift(starter: Starter) -> str:
    """Swift's servers, and the bucket; the S3 endpoint."""
    root = starter.temp_dir(Path(tempfile.mkdtemp(prefix="agentbox-swift-")))
    try:
        node = swift.configure(root, REPO / ".clients" / "swift" / "bin")
    except subprocess.CalledProcessError as error:
        raise ClusterError(f"Swift's rings:\n{error.stderr.decode(errors='replace')}") from error
    except RuntimeError as error:
        raise ClusterError(f"Swift: {error}") from error
    for name, argv in node.commands.items():
        starter.spawn(f"swift-{name}", argv, SWIFT, signal.SIGTERM, cwd=root)
    try:
        swift.wait_healthy(node.ports, time.monotonic() + START_TIMEOUT_S)
    except RuntimeError as error:
        raise ClusterError(f"{error}; see {starter.state.logs}/swift-*.log") from error
    swift.s3_client(node.endpoint).create_bucket(Bucket=BUCKET)
    return node.endpoint


def _start_ray(starter: Starter, count: int, blob_env: Mapping[str, str]) -> dict[str, str]:
    """A Ray head and `count` sandbox nodes, each with its own data dir and uid range; what the
    replicas need in their environment to use them."""
    root = starter.temp_dir(Path(tempfile.mkdtemp(prefix="agentbox-ray-")))
    ray = RayCluster(root / "ray")  # Ray's unix sockets live under it: the path must stay short
    # A node's workers do not run in the checkout: a relative runtime dir would miss. The rest of the
    # caller's AGENTBOX_* settings reach every node with the environment RayCluster passes on.
    runtime = REPO / os.environ.get("AGENTBOX_SANDBOX_RUNTIME", ".runtime")
    try:
        ray.start_head()
        for index in range(1, count + 1):
            _adopt_new(starter, ray)  # recorded at once: `down` finds it if `up` is killed
            data_dir = root / f"node-{index}"
            ray.add_node(index, data_dir, NODE_UID_BASE + index * NODE_UID_SPAN, runtime, blob_env)
    except RuntimeError as error:
        raise ClusterError(f"Ray: {error}") from error
    finally:  # a node that failed to start still runs, and `down` must find it
        _adopt_new(starter, ray)
    starter.state.ray_token.touch(mode=0o600)
    starter.state.ray_token.write_text(ray.token + "\n")
    starter.cluster.fleet_url = ray.url
    starter.state.save(starter.cluster)
    return {"AGENTBOX_FLEET": ray.url, **ray.auth_env()}


def _adopt_new(starter: Starter, ray: RayCluster) -> None:
    """Record the Ray nodes not recorded yet."""
    recorded = {p.name for p in starter.cluster.processes}
    for name, child in ray.nodes.items():
        if f"ray-{name}" not in recorded:
            tier = RAY_HEAD if name == "head" else RAY_NODE
            starter.adopt(f"ray-{name}", child, tier, ray.root / f"{name}.log")


def _start_replicas(starter: Starter, agentbox: Path, count: int, shared: Mapping[str, str]) -> None:
    """`count` replicas started at once (they take turns migrating), each with its own data dir."""
    root = starter.temp_dir(Path(tempfile.mkdtemp(prefix="agentbox-replicas-")))
    env = {name: value for name, value in os.environ.items() if name != STATE_DIR_ENV}
    env.update(shared)
    if not env.get("AGENTBOX_API_KEYS"):
        env["AGENTBOX_API_KEYS"] = _generated_key(starter.state)
    names = [f"replica-{n}" for n in range(1, count + 1)]
    for name in names:
        argv = [str(agentbox), "serve", "--host", "127.0.0.1", "--port", "0"]
        # The checkout is their working directory, as for `make run`: its .runtime and .env.
        starter.spawn(
            name, argv, REPLICA, signal.SIGTERM, cwd=REPO, env={**env, "AGENTBOX_DATA_DIR": str(root / name)}
        )
    urls = starter.wait_for_lines(names, READY, START_TIMEOUT_S)
    for process, url in zip(starter.cluster.replicas, urls, strict=True):
        process.url = f"{url}/v1"
    starter.state.save(starter.cluster)


def _generated_key(state: StateDir) -> str:
    if not state.api_key.exists():
        state.api_key.touch(mode=0o600)
        state.api_key.write_text(f"sk-dev-cluster-{secrets.token_urlsafe(24)}\n")
    return state.api_key.read_text().strip()


def stop(cluster: Cluster) -> list[str]:
    """Stop every process, replicas first, then the Ray nodes, Ray's head, Swift, PostgreSQL; remove
    the temporary directories. Returns what could not be removed."""
    for tier in (REPLICA, RAY_NODE, RAY_HEAD, SWIFT, POSTGRES):
        _stop_all([p for p in cluster.processes if p.tier == tier])
    left = []
    for directory in map(Path, cluster.temp_dirs):
        _unmount_sessions_under(directory)
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            left.append(str(directory))
    return left


def _stop_all(processes: Sequence[Process]) -> None:
    """Each process's stop signal at once; SIGKILL for those still there after STOP_TIMEOUT_S; then
    SIGKILL for anything left in their process groups (start_new_session made each a leader)."""
    running = [p for p in processes if p.alive()]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            if process.group:
                os.killpg(process.pid, process.stop_signal)
            else:
                os.kill(process.pid, process.stop_signal)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(p.alive() for p in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in running:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    while any(p.alive() for p in running):
        time.sleep(0.05)


def _unmount_sessions_under(directory: Path) -> None:
    """A replica or node killed before it cleaned up leaves its sessions' tmpfs (agentbox-…) mounted."""
    prefix = f"{directory}/"
    with open("/proc/self/mountinfo") as mounts:
        points = [
            f[4] for f in map(str.split, mounts) if f[-2].startswith("agentbox-") and f[4].startswith(prefix)
        ]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _say(text: str) -> None:
    print(f"dev-cluster: {text}", file=sys.stderr, flush=True)


def _status(state: StateDir) -> int:
    cluster = state.load()
    if cluster is None:
        _say("no cluster is up")
        return 1
    for process in cluster.processes:
        if not process.alive():
            _say(f"{process.name} (pid {process.pid}) is not running: see {state.log(process.name)}")
    live = [p.url for p in cluster.replicas if p.alive() and p.url]
    for url in live:
        print(url)
    _say_nodes(cluster, state)
    if not live:
        _say("no replica of the cluster is running: `down` cleans up")
        return 1
    return 0


def _say_nodes(cluster: Cluster, state: StateDir) -> None:
    """The Ray nodes, on stderr: stdout stays one replica URL a line."""
    nodes = [p for p in cluster.nodes if p.alive()]
    if cluster.fleet_url and nodes:
        names = ", ".join(p.name.removeprefix("ray-") for p in nodes)
        _say(
            f"fleet: {cluster.fleet_url} ({names}; RAY_AUTH_MODE=token, RAY_AUTH_TOKEN in {state.ray_token})"
        )


def _up(state: StateDir, replicas: int, nodes: int) -> int:
    started = time.monotonic()
    cluster = up(state, replicas, nodes)
    for process in cluster.replicas:
        print(process.url, flush=True)
    ready = f"{replicas} replica(s)" + (f" and {nodes} sandbox node(s)" if nodes else "")
    _say(f"{ready} ready in {time.monotonic() - started:.1f} s; logs in {state.logs}")
    _say_nodes(cluster, state)
    _say(f"database: {cluster.database_url}")
    credentials = f"AWS_ACCESS_KEY_ID={swift.ACCESS_KEY} AWS_SECRET_ACCESS_KEY={swift.SECRET_KEY}"
    _say(f"files: {cluster.blob_url} ({credentials})")
    if not os.environ.get("AGENTBOX_API_KEYS"):
        _say(f"API key (AGENTBOX_API_KEYS was not set): in {state.api_key}")
    return 0


def _down(state: StateDir) -> int:
    cluster = state.load()
    if cluster is None:
        _say("no cluster is up")
        return 0
    left = stop(cluster)
    state.file.unlink(missing_ok=True)
    if left:
        _say(f"could not remove {', '.join(left)}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/dev-cluster",
        description="PostgreSQL, an S3 store (Swift) and several agentbox replicas on loopback.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start PostgreSQL, Swift, the Ray nodes and the replicas")
    start.add_argument("--replicas", type=int, default=2, metavar="M", help="agentbox serve replicas (2)")
    start.add_argument(
        "--nodes",
        type=int,
        default=0,
        metavar="N",
        help="Ray sandbox nodes the replicas send sessions to (0: none)",
    )
    commands.add_parser("status", help="each replica's base URL, one a line; exit 1 when none is up")
    commands.add_parser("down", help="stop everything `up` started and remove its temporary directories")
    args = parser.parse_args(argv)
    state = StateDir(Path(os.environ.get(STATE_DIR_ENV) or REPO / ".dev-cluster").absolute())
    try:
        if args.command == "status":
            return _status(state)
        if args.command == "down":
            return _down(state)
        if args.replicas < 1:
            _say("--replicas: at least 1")
            return 2
        if args.nodes < 0:
            _say("--nodes: 0 or more")
            return 2
        return _up(state, args.replicas, args.nodes)
    except ClusterError as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:
        _say("interrupted" + ("; what had started is stopped again" if args.command == "up" else ""))
        return 130


if __name__ == "__main__":
    sys.exit(main())
