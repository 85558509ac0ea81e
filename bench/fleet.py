"""The sandbox fleet: what running a cell on a Ray node costs against running it on the replica's own
machine, measured side by side.

    python -m bench.fleet [--cells 40] [--data-mb 20]

Three configurations, each a fresh server on loopback, in the same run:
- local: one replica with its own sandboxes (SQLite, local files: the default);
- local, PostgreSQL + S3: the same with shared state and files (what stage 1 costs);
- fleet: one replica with AGENTBOX_FLEET, sessions on one Ray node (token auth), PostgreSQL + S3.
In each, one container runs `cells` trivial cells (`n += 1`) one after another through the exec API,
then writes `data_mb` MiB into /mnt/data and runs `cells` more: in the fleet every cell is followed
by an archive of /mnt/data to the object store, so the second figure shows what the checkpoint
costs as the files grow. Figures: each cell's round trip as the client sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from tests.live_server import LiveServer
from tests.postgres_server import PostgresServer
from tests.swift_server import SwiftServer

from agentbox.devtools.ray_cluster import RayCluster, sweep_node
from bench.stats import Figure, ms

KEY = "sk-bench-fleet"
REPO = Path(__file__).resolve().parents[1]
WARM_UP = 3
UID_BASE = 1_600_000


def _cells(server: LiveServer, cells: int, data_mb: int) -> tuple[list[float], list[float]]:
    """Round trips of `cells` trivial cells with an empty /mnt/data, then with data_mb MiB in it."""
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300
    ) as api:
        created = api.post("/containers", json={"name": "bench"})
        created.raise_for_status()
        container = created.json()["id"]

        def run(code: str) -> float:
            started = time.perf_counter()
            response = api.post(f"/containers/{container}/exec", json={"code": code})
            took = time.perf_counter() - started
            response.raise_for_status()
            if response.json()["status"] != "ok":
                raise RuntimeError(f"a bench cell failed: {response.text[:500]}")
            return took

        run("n = 0")
        for _ in range(WARM_UP):
            run("n += 1")
        empty = [run("n += 1") for _ in range(cells)]
        run(f"open('/mnt/data/blob.bin', 'wb').write(bytes({data_mb << 20}))")
        full = [run("n += 1") for _ in range(cells)]
        return empty, full


@contextmanager
def _shared(root: Path) -> Iterator[tuple[PostgresServer, SwiftServer]]:
    with ExitStack() as stack:
        postgres = PostgresServer().start()
        stack.callback(postgres.stop)
        swift = SwiftServer(root / "swift").start()
        stack.callback(swift.stop)
        yield postgres, swift


def measure(root: Path, cells: int, data_mb: int) -> list[Figure]:
    samples: dict[str, tuple[list[float], list[float]]] = {}
    for name in ("local", "pg-s3", "fleet"):
        (root / name).mkdir()  # the servers' working dirs, their data dirs below
    local = LiveServer(root / "local" / "data", KEY).start()
    try:
        samples["local"] = _cells(local, cells, data_mb)
    finally:
        local.stop()
    with _shared(root) as (postgres, swift):
        shared = {
            **swift.blob_env(swift.new_bucket()),
            "AGENTBOX_DATABASE_URL": postgres.create_database("bench_local"),
        }
        server = LiveServer(root / "pg-s3" / "data", KEY, **shared).start()
        try:
            samples["local, PostgreSQL + S3"] = _cells(server, cells, data_mb)
        finally:
            server.stop()
        samples["fleet, 1 Ray node"] = _fleet(root, postgres, swift, cells, data_mb)
    figures = []
    for config, (empty, full) in samples.items():
        figures.append(Figure.of(f"cell round trip · {config} · empty /mnt/data", ms(empty)))
        figures.append(Figure.of(f"cell round trip · {config} · {data_mb} MiB in /mnt/data", ms(full)))
    return figures


def _fleet(
    root: Path, postgres: PostgresServer, swift: SwiftServer, cells: int, data_mb: int
) -> tuple[list[float], list[float]]:
    blobs = swift.blob_env(swift.new_bucket())
    cluster = RayCluster(root / "ray")
    try:
        cluster.start_head()
        cluster.add_node(
            0, root / "node-0", UID_BASE, REPO / ".runtime", {**blobs, "AGENTBOX_POOL_SIZE": "0"}
        )
        server = LiveServer(
            root / "fleet" / "data",
            KEY,
            AGENTBOX_DATABASE_URL=postgres.create_database("bench_fleet"),
            AGENTBOX_FLEET=cluster.url,
            **blobs,
            **cluster.auth_env(),
        ).start()
        try:
            return _cells(server, cells, data_mb)
        finally:
            server.stop()
    finally:
        cluster.stop_all()
        asyncio.run(sweep_node(root / "node-0", UID_BASE, REPO / ".runtime"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--data-mb", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-fleet-") as directory:
        figures = measure(Path(directory), args.cells, args.data_mb)
        _print(figures)
    return 0


def _print(figures: list[Figure]) -> None:
    local = {f.name.split(" · ")[2]: f.p50 for f in figures if f.name.split(" · ")[1] == "local"}
    print("| sessions | /mnt/data | p50 | p95 | n | p50 / local |")
    print("|---|---|---|---|---|---|")
    for f in figures:
        _, config, data = f.name.split(" · ")
        print(f"| {config} | {data} | {f.p50:.1f} ms | {f.p95:.1f} ms | {f.n} | {f.p50 / local[data]:.2f}x |")


if __name__ == "__main__":
    raise SystemExit(main())
