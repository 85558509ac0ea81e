"""A small run of `make bench`, so the benchmarks cannot rot. Timings are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.live_server import REPO


def test_quick_bench_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    names = [f["name"] for f in json.loads(out.read_text())["figures"]]
    for expected in (
        "baseline: fresh jupyter kernel → first print(1)",
        "baseline: fresh python -c → print(1)",
        "new session → first print(1) [bubblewrap]",
        "new session → chart PNG [bubblewrap]",
        "live cell round trip [bubblewrap]",
        "interrupt: deadline → KeyboardInterrupt back [bubblewrap]",
        "kill: grace over → session killed, reply back [bubblewrap]",
        "idle session USS (ran a cell) [bubblewrap]",
        "pooled sandbox USS (never used) [bubblewrap]",
        "interrupt on request → reply back [bubblewrap]",
        "two 1 s cells in two sessions at once → both back [bubblewrap]",
        "template process USS (shared by every session) [bubblewrap]",
        "baseline: new session, no pool, no fork server → first print(1) [bubblewrap]",
        "baseline: idle session USS, no fork server [bubblewrap]",
        "one-step run minus model time [bubblewrap]",
        "simple GETs per second [bubblewrap]",
        "Responses: two-turn code conversation minus model time [bubblewrap]",
        "baseline: the same two turns as Assistants runs minus model time [bubblewrap]",
        "Responses: stream → first event [bubblewrap]",
    ):
        assert expected in names
    assert any(name.startswith("burst of 4, default pool of ") for name in names), names
    assert "load: completed runs per second (20 runs, 10 clients) [current config]" in names
    assert "| figure | p50 | p95 | n |" in done.stdout
