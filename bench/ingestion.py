"""A file through file_search's ingestion, step by step and timed: extract (retrieval.extract),
chunk (retrieval.chunking, cl100k tokens), embed (retrieval.embeddings, when an endpoint is given),
index (retrieval.index: the chunks table and its FTS5 index in SQLite). The same steps, in the same
order, as a vector store file's ingestion; each step timed alone, on one file at a time.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from agentbox.ids import new_id
from agentbox.retrieval import index
from agentbox.retrieval.chunking import chunk_text, count_tokens
from agentbox.retrieval.embeddings import Embedder
from agentbox.retrieval.extract import extract_text
from agentbox.store.database import Store
from agentbox.store.records import ChunkRecord
from bench import documents
from bench.stats import Figure

KINDS = ("txt", "pdf", "docx")
MAX_TOKENS, OVERLAP = 800, 400  # OpenAI's default static chunking


@dataclass
class Ingested:
    chunk_ids: list[str]
    text_bytes: int
    extract_s: float
    chunk_s: float
    embed_s: float
    index_s: float


async def ingest(
    store: Store, embedder: Embedder | None, store_id: str, file_id: str, path: Path
) -> Ingested:
    started = time.perf_counter()
    text = extract_text(path.name, path)
    extracted = time.perf_counter()
    pieces = chunk_text(text, MAX_TOKENS, OVERLAP)
    chunked = time.perf_counter()
    vectors = await embedder.embed(pieces) if embedder is not None else [None] * len(pieces)
    embedded = time.perf_counter()
    now = int(time.time())
    records = [
        ChunkRecord(new_id("chunk"), now, store_id, file_id, i, piece, count_tokens(piece), vector)
        for i, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))
    ]
    before_index = time.perf_counter()
    await index.add_chunks(store, records)
    indexed = time.perf_counter()
    return Ingested(
        [r.id for r in records],
        len(text.encode()),
        extracted - started,
        chunked - extracted,
        embedded - chunked,
        indexed - before_index,
    )


def bulk_paragraphs(corpus: list[str], megabytes: float) -> list[str]:
    """The corpus's paragraphs repeated (each copy numbered) until they hold `megabytes` of text."""
    paragraphs: list[str] = []
    size, copy = 0, 0
    while size < megabytes * 1_000_000:
        copy += 1
        for paragraph in corpus:
            paragraphs.append(f"{paragraph} (copy {copy})")
            size += len(paragraphs[-1]) + 2
    return paragraphs


async def per_megabyte(
    store: Store,
    embedder: Embedder | None,
    workdir: Path,
    corpus: list[str],
    megabytes: float,
    reps: int,
    embed_megabytes: float,
) -> tuple[list[Figure], list[dict[str, object]]]:
    """Seconds per MB of extracted text for each kind, step by step (median of `reps`), and the
    embedding step once on the first `embed_megabytes` of the text (its cost does not depend on
    the file's format)."""
    paragraphs = bulk_paragraphs(corpus, megabytes)
    figures: list[Figure] = []
    rows: list[dict[str, object]] = []
    for kind in KINDS:
        path = documents.write(kind, paragraphs, workdir / f"bulk.{kind}")
        runs = [await ingest(store, None, new_id("vs"), new_id("file"), path) for _ in range(reps)]
        mb = runs[0].text_bytes / 1e6
        steps = {
            "extract": statistics.median(r.extract_s for r in runs) / mb,
            "chunk": statistics.median(r.chunk_s for r in runs) / mb,
            "index": statistics.median(r.index_s for r in runs) / mb,
        }
        steps["total"] = sum(steps.values())
        rows.append(
            {
                "kind": kind,
                "file_mb": path.stat().st_size / 1e6,
                "text_mb": mb,
                "chunks": len(runs[0].chunk_ids),
                **steps,
            }
        )
        for step, value in steps.items():
            figures.append(
                Figure(f"ingestion: {step}, s per MB of text [{kind}]", "s/MB", value, value, reps)
            )
    if embedder is not None:
        sample = documents.write("txt", bulk_paragraphs(corpus, embed_megabytes), workdir / "embed.txt")
        run = await ingest(store, embedder, new_id("vs"), new_id("file"), sample)
        value = run.embed_s / (run.text_bytes / 1e6)
        rows.append(
            {"kind": "embed", "text_mb": run.text_bytes / 1e6, "chunks": len(run.chunk_ids), "embed": value}
        )
        figures.append(Figure("ingestion: embed, s per MB of text", "s/MB", value, value, 1))
    return figures, rows
