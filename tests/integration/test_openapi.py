"""The OpenAPI document matches what the live server accepts and returns (checked by schemathesis).

Schemathesis generates requests from /openapi.json, valid and invalid, and checks each answer: never
a 5xx, a status the document lists, a body that matches the documented schema, and invalid input
refused. (Its pytest
plugin does not load under pytest 9, so the operations are driven with hypothesis directly.)
"""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import API_KEY
from tests.live_server import LiveServer


def test_every_route_keeps_its_documented_promises(live_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    headers = {"Authorization": f"Bearer {API_KEY}"}

    cases = [(op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    for operation, mode in cases:
        if operation.path.endswith("/content"):
            continue  # raw bytes, checked by the SDK tests

        @hypothesis.settings(
            max_examples=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict) and case.body.get("stream") is True:
                case.body["stream"] = False  # streaming answers are checked in test_streaming.py
            # A schema can't say which ids exist or which run is active, so a 400/404 for a
            # well-formed request naming an unknown cursor is fine; every other check applies.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            # An operation with nothing to get wrong (no parameters, no body) has no negative cases.
            assert mode is GenerationMode.NEGATIVE, operation.label
