"""A real /v1/embeddings endpoint for the retrieval bench: llama.cpp (llama-cpp-python's server)
with the SmolLM2-135M-Instruct GGUF that the tests' chat server uses (tests/llama_server.py).

Two settings matter beyond `--embedding true`:
- the pooling. SmolLM2 is a causal chat model whose GGUF names no pooling type, so llama.cpp
  would pool nothing and the server would answer one vector *per token* for each input — not the
  OpenAI shape (and with several inputs in one request, llama-cpp-python 0.3 reads the per-token
  vectors of every input after the first from the wrong offset). The GGUF key
  `llama.pooling_type` is overridden (`--kv_overrides`) to mean (1) or last-token (3) pooling,
  and the server then answers one vector per input.
- the batch. An input longer than `n_batch` tokens is cut to it; file_search's largest default
  chunk is 800 cl100k tokens, ~900 of SmolLM2's, so n_batch and n_ubatch are raised to 1024.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from tests.live_server import ServerProcess
from tests.llama_server import MODEL_ALIAS, READY, model_path

POOLING = {"mean": 1, "last": 3}
BATCH_TOKENS = 1024


@contextmanager
def embeddings_server(pooling: str = "mean", timeout_s: float = 120) -> Iterator[str]:
    """Start the server on a free loopback port; yields its /v1 base URL; stops it after."""
    argv = [
        sys.executable, "-m", "llama_cpp.server", "--host", "127.0.0.1", "--port", "0",
        "--model", str(model_path()),
        "--model_alias", MODEL_ALIAS,
        "--embedding", "true",
        "--kv_overrides", f"llama.pooling_type=int:{POOLING[pooling]}",
        "--n_ctx", str(2 * BATCH_TOKENS),
        "--n_batch", str(BATCH_TOKENS),
        "--n_ubatch", str(BATCH_TOKENS),
        "--n_threads", str(os.cpu_count() or 1),
        "--verbose", "False",
    ]  # fmt: skip
    output: list[str] = []
    process = ServerProcess(argv, READY, output)
    try:
        ready = process.wait_ready(timeout_s)
        if ready is None:
            raise RuntimeError("llama_cpp.server did not start:\n" + "".join(output[-40:]))
        base_url = f"http://127.0.0.1:{ready.group(1)}/v1"
        probe = httpx.post(
            f"{base_url}/embeddings", json={"model": MODEL_ALIAS, "input": ["a", "b c"]}, timeout=60
        ).json()
        vectors = [item["embedding"] for item in probe["data"]]
        if len(vectors) != 2 or not all(isinstance(x, float) for v in vectors for x in v):
            raise RuntimeError(f"the embeddings server does not pool: {str(probe)[:300]}")
        yield base_url
    finally:
        process.stop()
