"""Every status change of a run (Assistants) or a response (Responses API), seen in one place.

RunEvents hands over each event it publishes (observe): the ones that carry a run record or a
response object tell the status, and a status different from the last one seen is a transition.
Each transition is one log record on agentbox.runs with the ids (a JSON line in JSON mode), and one
reaching a final status counts in agentbox_runs_total. Changes that publish no event (a response
cancelled, runs ended by the restart recovery) call note() themselves.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from agentbox import metrics
from agentbox.store.records import RunRecord

log = logging.getLogger("agentbox.runs")

Api = Literal["assistants", "responses"]
FINAL = frozenset({"completed", "incomplete", "failed", "cancelled", "expired"})


def status_of(payload: Any) -> str | None:
    """The run's or response's status an event payload shows; None for other events (steps, deltas)."""
    if isinstance(payload, RunRecord):
        return payload.status.value
    if isinstance(payload, dict) and isinstance(response := payload.get("response"), dict):
        status = response.get("status")
        return status if isinstance(status, str) else None
    return None


def observe(previous: str | None, payload: Any) -> str | None:
    """Note the transition an event payload shows after `previous`; the status now known."""
    status = status_of(payload)
    if status is None or status == previous:
        return previous
    if isinstance(payload, RunRecord):
        note("assistants", payload.id, payload.thread_id, previous, status, _run_reason(payload))
    else:
        response = payload["response"]
        conversation = response.get("conversation") or {}
        note(
            "responses", str(response.get("id")), conversation.get("id"), previous, status, _reason(response)
        )
    return status


def note(
    api: Api, run_id: str, parent_id: str | None, before: str | None, after: str, reason: str | None
) -> None:
    """Log one transition (and count a final one). parent_id: the thread, or the response's conversation."""
    if api == "assistants":
        ids = {"run_id": run_id, "thread_id": parent_id}
    else:
        ids = {"response_id": run_id, "conversation_id": parent_id}
    log.info(
        "%s %s: %s -> %s%s",
        "run" if api == "assistants" else "response",
        run_id,
        before or "(new)",
        after,
        f" ({reason})" if reason else "",
        extra={"event": "transition", "api": api, **ids, "from": before, "to": after, "reason": reason},
    )
    if after in FINAL:
        metrics.RUNS.labels(api, after).inc()


def _run_reason(run: RunRecord) -> str | None:
    if run.last_error:
        return f"{run.last_error.get('code')}: {run.last_error.get('message')}"
    return run.incomplete_reason


def _reason(response: dict[str, Any]) -> str | None:
    error = response.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    details = response.get("incomplete_details")
    if isinstance(details, dict):
        return str(details.get("reason"))
    return None
