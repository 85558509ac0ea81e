"""`make bench`: every figure of BENCHMARKS.md with its baseline, measured in the same run.

    python -m bench.run [--quick] [--backend bubblewrap|gvisor] [--out FILE]

Writes the figures as JSON and prints them as a markdown table (p50 / p95, and the ratio to the
baseline measured beside them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench import api, baselines, fleet, load, replicas, retrieval, sessions
from bench.stats import Figure, ms

REPO = Path(__file__).resolve().parent.parent
CSV = REPO / "examples" / sessions.CSV_NAME
PRINT_1 = "print(1)"


def measure_baselines(quick: bool, workdir: Path) -> list[Figure]:
    reps = 2 if quick else 6
    (workdir / sessions.CSV_NAME).write_bytes(CSV.read_bytes())
    figures: list[Figure] = []
    with baselines.kernelspec_dir():
        starts, charts = [], []
        for _ in range(reps):
            elapsed, text, _ = baselines.jupyter_first_output(PRINT_1)
            assert text.strip() == "1"
            starts.append(elapsed)
        chart_code = sessions.CHART.replace(f"'{sessions.CSV_NAME}'", repr(str(workdir / sessions.CSV_NAME)))
        for _ in range(reps):
            elapsed, _, images = baselines.jupyter_first_output(chart_code)
            assert images and images[0].startswith(b"\x89PNG")
            charts.append(elapsed)
        kernel = baselines.Kernel()
        try:
            kernel.run("x = 1")
            trips = []
            for _ in range(20 if quick else 200):
                started = time.perf_counter()
                kernel.run("x += 1")
                trips.append(time.perf_counter() - started)
        finally:
            kernel.close()
    figures += [
        Figure.of("baseline: fresh jupyter kernel → first print(1)", ms(starts)),
        Figure.of("baseline: fresh jupyter kernel → chart PNG", ms(charts)),
        Figure.of("baseline: live jupyter kernel round trip", ms(trips)),
    ]
    saving_chart = chart_code.replace("plt.show()", "plt.savefig('chart.png')")
    pyc = [baselines.python_c(PRINT_1, workdir)[0] for _ in range(reps * 2)]
    pyc_chart = [baselines.python_c(saving_chart, workdir)[0] for _ in range(reps)]
    figures += [
        Figure.of("baseline: fresh python -c → print(1)", ms(pyc)),
        Figure.of("baseline: fresh python -c → chart PNG", ms(pyc_chart)),
    ]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a few repetitions only (the test suite's smoke run)"
    )
    parser.add_argument(
        "--backend", action="append", help="sandbox backend(s) to measure (default bubblewrap)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    backends = args.backend or ["bubblewrap"]
    started = time.perf_counter()
    figures: list[Figure] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="agentbox-bench-") as scratch:
        root = Path(scratch)
        figures += measure_baselines(args.quick, root)
        for backend in backends:
            chosen = None if backend == "bubblewrap" else backend
            figures += asyncio.run(
                sessions.measure(root / f"sessions-{backend}", REPO / ".runtime", CSV, args.quick, chosen)
            )
            figures += api.measure(root / f"data-{backend}", args.quick, chosen)
        # The load, on the default backend, beside the server's previous concurrency settings.
        if args.quick:
            found, failures = load.measure(root, 20, 10, ["current"], returning=10, rounds=1)
        else:
            found, failures = load.measure(root, 1000, 200, ["previous", "current"])
        figures += found
        # Scale-out: two replicas on one PostgreSQL against one, and one on SQLite (not in --quick:
        # a PostgreSQL and four servers to start would add ~25 s to the smoke run).
        if not args.quick:
            found, failed = replicas.measure(root / "replicas", 200, 32, rounds=3)
            figures += found
            failures += failed
            # The sandbox fleet: a cell on a Ray node against one on the replica's machine.
            (root / "fleet").mkdir()
            figures += fleet.measure(root / "fleet", 40, 20)
        # file_search: ranking quality and ingestion speed (--quick: full text only, no llama.cpp).
        figures += retrieval.measure(root / "retrieval", args.quick)
    result = {
        "machine": f"{platform.node()} {platform.machine()} {platform.platform()}",
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": [f.as_dict() for f in figures],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(table(figures))
    print(f"\n{len(figures)} figures in {result['seconds']} s → {args.out}")
    for line in failures:
        print("FAILED (load)", line, file=sys.stderr)
    return 1 if failures else 0


def table(figures: list[Figure]) -> str:
    lines = ["| figure | p50 | p95 | n |", "|---|---|---|---|"]
    for f in figures:
        lines.append(f"| {f.name} | {f.p50:.2f} {f.unit} | {f.p95:.2f} {f.unit} | {f.n} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
