"""`python -m bench.retrieval`: file_search's ranking quality and ingestion speed.

    python -m bench.retrieval [--quick] [--embeddings llama|none] [--embeddings-url URL
        --embeddings-model NAME] [--pooling mean|last] [--ingest-mb 1.0] [--out FILE]

Quality: the labelled corpus of bench/corpus (33 short documents, 66 queries, each with the one
document that answers it; half the queries use the document's own words, half are paraphrases
that share few of them) is ingested through agentbox.retrieval into a temporary Store, and every
query is ranked three ways: full text alone (SQLite FTS5 BM25, what a server without an
embeddings endpoint does), dense alone (cosine over the embeddings) and fused (reciprocal rank
fusion of both: retrieval.search with an embedder, what file_search does with one). A query's rank
is the position of its document among the distinct documents of the results; recall@5 is the
share of queries whose document is in the first 5, MRR the mean of 1/rank over the first 10.

Embeddings come from a real endpoint: by default llama.cpp's server with the tests' SmolLM2-135M
(bench/llama_embeddings.py), or any OpenAI-compatible /v1 given by --embeddings-url.

Ingestion: the corpus repeated to --ingest-mb of text, written as .txt, .pdf and .docx, each
extracted, chunked and indexed (bench/ingestion.py), in seconds per MB of extracted text; the
embedding step is timed on a smaller sample (--embed-mb) and given per MB as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentbox.ids import new_id
from agentbox.retrieval import index, search
from agentbox.retrieval.embeddings import Embedder
from agentbox.retrieval.results import SearchRequest
from agentbox.store.database import Store
from bench import ingestion
from bench.stats import Figure, ms

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
RECALL_AT = 5
MRR_DEPTH = 10
MODES = ("full text", "dense", "fused")


@dataclass(frozen=True)
class Query:
    text: str
    doc: str
    kind: str
    """lexical (uses the document's words) or paraphrase (shares few of them)."""


def load_corpus(root: Path = CORPUS) -> tuple[dict[str, Path], list[Query]]:
    docs = {path.stem: path for path in sorted((root / "docs").glob("*.txt"))}
    lines = (root / "queries.jsonl").read_text().splitlines()
    queries = [Query(q["query"], q["doc"], q["kind"]) for q in map(json.loads, filter(None, lines))]
    unknown = {q.doc for q in queries} - set(docs)
    if unknown:
        raise ValueError(f"queries name documents that are not in the corpus: {sorted(unknown)}")
    return docs, queries


def distinct(file_ids: list[str], limit: int = MRR_DEPTH) -> list[str]:
    """The documents of a ranking of chunks, in order, each once."""
    seen: list[str] = []
    for file_id in file_ids:
        if file_id not in seen:
            seen.append(file_id)
    return seen[:limit]


def score(ranked: list[list[str]], queries: list[Query]) -> dict[str, float]:
    """recall@5 and MRR@10 for all queries and for each kind."""
    result: dict[str, float] = {}
    for kind in ("all", "lexical", "paraphrase"):
        picked = [(r, q) for r, q in zip(ranked, queries, strict=True) if kind in ("all", q.kind)]
        if not picked:
            continue
        ranks = [r.index(q.doc) + 1 if q.doc in r else None for r, q in picked]
        result[f"recall@{RECALL_AT} {kind}"] = sum(1 for k in ranks if k and k <= RECALL_AT) / len(ranks)
        result[f"MRR {kind}"] = statistics.fmean(1 / k if k else 0.0 for k in ranks)
    return result


async def quality(
    store: Store, embedder: Embedder | None, docs: dict[str, Path], queries: list[Query]
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]], dict[str, list[list[str]]]]:
    """Scores per mode, search latencies per mode (s), and each mode's ranked documents."""
    store_id = new_id("vs")
    chunk_doc: dict[str, str] = {}
    for doc, path in docs.items():
        done = await ingestion.ingest(store, embedder, store_id, doc, path)
        chunk_doc |= {chunk_id: doc for chunk_id in done.chunk_ids}
    names = {doc: path.name for doc, path in docs.items()}
    modes = MODES if embedder is not None else MODES[:1]
    ranked: dict[str, list[list[str]]] = {mode: [] for mode in modes}
    latency: dict[str, list[float]] = {mode: [] for mode in modes}
    vectors = await embedder.embed([q.text for q in queries]) if embedder is not None else []
    for i, query in enumerate(queries):
        for mode in modes:
            started = time.perf_counter()
            if mode == "dense":
                hits = await index.dense(store, [store_id], vectors[i], 3 * MRR_DEPTH)
                files = [chunk_doc[chunk_id] for chunk_id, _ in hits]
            else:
                request = SearchRequest([store_id], query.text, max_num_results=3 * MRR_DEPTH)
                used = embedder if mode == "fused" else None
                files = [r.file_id for r in await search.search(store, used, request, names, {})]
            latency[mode].append(time.perf_counter() - started)
            ranked[mode].append(distinct(files))
    return {mode: score(ranked[mode], queries) for mode in modes}, latency, ranked


@contextmanager
def endpoint(choice: str, url: str | None, pooling: str) -> Iterator[tuple[str, str] | None]:
    """(base URL, model) of the embeddings endpoint to use, or None for full text only."""
    if url:
        yield url, ""
    elif choice == "llama":
        from tests.llama_server import MODEL_ALIAS

        from bench.llama_embeddings import embeddings_server

        with embeddings_server(pooling) as base_url:
            yield base_url, MODEL_ALIAS
    else:
        yield None


async def measure_all(
    workdir: Path, where: tuple[str, str] | None, ingest_mb: float, reps: int, embed_mb: float
) -> tuple[list[Figure], dict[str, object]]:
    docs, queries = load_corpus()
    embedder = Embedder(where[0], where[1], timeout_s=600) if where is not None else None
    store = Store(workdir / "bench.sqlite3")
    store.migrate()
    try:
        scores, latency, ranked = await quality(store, embedder, docs, queries)
        corpus = [p for path in docs.values() for p in path.read_text().split("\n\n") if p.strip()]
        ingest_figures, ingest_rows = await ingestion.per_megabyte(
            store, embedder, workdir, corpus, ingest_mb, reps, embed_mb
        )
    finally:
        if embedder is not None:
            await embedder.aclose()
        store.close()
    figures = []
    for mode, values in scores.items():
        for name, value in values.items():
            figures.append(Figure(f"retrieval {name} [{mode}]", "", value, value, len(queries)))
        figures.append(Figure.of(f"retrieval: search latency [{mode}]", ms(latency[mode])))
    misses = {
        mode: [
            {"query": q.text, "doc": q.doc, "kind": q.kind, "top": r[:3]}
            for q, r in zip(queries, ranked[mode], strict=True)
            if q.doc not in r[:RECALL_AT]
        ]
        for mode in ranked
    }
    report = {"documents": len(docs), "queries": len(queries), "scores": scores, "ingestion": ingest_rows}
    return figures + ingest_figures, report | {"misses": misses}


def measure(workdir: Path, quick: bool) -> list[Figure]:
    """For bench.run: with llama.cpp embeddings; --quick: full text only, a small ingestion."""
    workdir.mkdir(parents=True, exist_ok=True)
    with endpoint("none" if quick else "llama", None, "mean") as where:
        size, reps, embed_mb = (0.05, 1, 0.0) if quick else (1.0, 3, 0.02)
        return asyncio.run(measure_all(workdir, where, size, reps, embed_mb))[0]


def tables(report: dict[str, object], figures: list[Figure]) -> str:
    scores = report["scores"]
    assert isinstance(scores, dict)
    lines = [
        f"| ranking | recall@{RECALL_AT} all | lexical | paraphrase "
        f"| MRR@{MRR_DEPTH} all | lexical | paraphrase |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, v in scores.items():
        cells = [f"{v[f'recall@{RECALL_AT} {k}']:.2f}" for k in ("all", "lexical", "paraphrase")]
        cells += [f"{v[f'MRR {k}']:.2f}" for k in ("all", "lexical", "paraphrase")]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "| figure | p50 | p95 | n |", "|---|---|---|---|"]
    for f in figures:
        if not f.name.startswith("retrieval recall") and not f.name.startswith("retrieval MRR"):
            lines.append(f"| {f.name} | {f.p50:.3f} {f.unit} | {f.p95:.3f} {f.unit} | {f.n} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.retrieval", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="full text only, 0.05 MB ingestion")
    parser.add_argument("--embeddings", choices=["llama", "none"], default="llama")
    parser.add_argument("--embeddings-url", help="an OpenAI-compatible /v1 base URL instead of llama.cpp")
    parser.add_argument("--embeddings-model", default="", help="the model to ask --embeddings-url for")
    parser.add_argument("--pooling", choices=["mean", "last"], default="mean", help="llama.cpp pooling")
    parser.add_argument("--ingest-mb", type=float, default=1.0, help="MB of text per ingestion file")
    parser.add_argument("--embed-mb", type=float, default=0.02, help="MB of text the embed step is timed on")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.embeddings, args.ingest_mb, args.reps = "none", 0.05, 1
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="agentbox-retrieval-") as scratch,
        endpoint(args.embeddings, args.embeddings_url, args.pooling) as where,
    ):
        if where is not None and args.embeddings_model:
            where = (where[0], args.embeddings_model)
        figures, report = asyncio.run(
            measure_all(Path(scratch), where, args.ingest_mb, args.reps, args.embed_mb)
        )
    report |= {
        "embeddings": "none" if where is None else f"{where[1] or 'default'} at {where[0]}",
        "pooling": args.pooling,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": [f.as_dict() for f in figures],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(tables(report, figures))
    print(f"\n{len(figures)} figures in {report['seconds']} s → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
