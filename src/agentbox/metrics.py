"""The Prometheus metrics agentbox exports at GET /metrics, defined once for every layer to update.

A leaf module: it imports nothing of agentbox, so the engine, the sandbox and the model clients may
all import it. The metrics live in prometheus_client's default registry, which also carries the
process's own (process_resident_memory_bytes, process_open_fds, python_gc_*): an operator watching
a soak sees memory and descriptors beside the run counts. Session counts are not kept here but read
from the session manager at each scrape (watch_sessions), so they can never drift from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST

RUNS = Counter(
    "agentbox_runs",
    "Runs that reached a final status: api is assistants (Assistants/Azure Agents runs) or responses "
    "(Responses API responses); status completed, incomplete, failed, cancelled or expired.",
    ["api", "status"],
)
CELL_SECONDS = Histogram(
    "agentbox_cell_duration_seconds",
    "Wall time of one code cell in a sandbox, waiting for its session and kernel included; status is "
    "ok, error, timeout, interrupted or killed.",
    ["status"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
SANDBOX_STARTS = Counter(
    "agentbox_sandbox_starts",
    "Sandbox kernels started: purpose is cell (a cell waited for it) or pool (started ahead).",
    ["purpose"],
)
SANDBOX_START_FAILURES = Counter("agentbox_sandbox_start_failures", "Sandbox kernels that failed to start.")
SANDBOX_KILLS = Counter(
    "agentbox_sandbox_kills",
    "Kernels killed while running a cell (past the interrupt grace, out of memory, crashed or exited); "
    "the session's variables are lost, its files kept.",
)
SANDBOX_OOMS = Counter(
    "agentbox_sandbox_oom_kills",
    "Kernels the session's memory cgroup killed (also in agentbox_sandbox_kills).",
)
MODEL_FIRST_TOKEN_SECONDS = Histogram(
    "agentbox_model_first_token_seconds",
    "Time from sending a model request to its first streamed token or tool-call fragment, retries "
    "included, by models-file provider.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
MODEL_CALL_SECONDS = Histogram(
    "agentbox_model_call_seconds",
    "Wall time of one model turn from request to its last chunk, retries included; outcome is ok or error.",
    ["provider", "outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
MODEL_ERRORS = Counter(
    "agentbox_model_errors",
    "Model turns that failed, after retries: kind is timeout, connection, rate_limited, "
    "context_too_long (the engine then truncates and tries once more), unconfigured, or "
    "provider_error (an error status, an error in the stream, or an answer that is cut or malformed).",
    ["provider", "kind"],
)

SessionStatistics = Callable[[], Mapping[str, int]]


class _Sessions(Collector):
    """Live and pooled sessions as gauges, asked of the session manager when Prometheus scrapes."""

    def __init__(self) -> None:
        self.source: SessionStatistics | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.source() if self.source is not None else {}
        sessions = GaugeMetricFamily(
            "agentbox_sessions",
            "Sandbox sessions: state live (held by a thread or container), pooled (started ahead, "
            "not yet claimed) or quarantined (closed, but a process would not die: its uid is held).",
            labels=["state"],
        )
        sessions.add_metric(["live"], stats.get("live", 0))
        sessions.add_metric(["pooled"], stats.get("ready", 0))
        sessions.add_metric(["quarantined"], stats.get("quarantined", 0))
        yield sessions
        yield GaugeMetricFamily(
            "agentbox_pool_target", "Sandboxes the warm pool tries to keep started.", stats.get("target", 0)
        )


_SESSIONS = _Sessions()
REGISTRY.register(_SESSIONS)


def watch_sessions(source: SessionStatistics) -> None:
    """Read the session gauges from `source` (the app's session manager) from now on."""
    _SESSIONS.source = source


def exposition() -> bytes:
    """Every metric in Prometheus's text format."""
    return generate_latest(REGISTRY)
