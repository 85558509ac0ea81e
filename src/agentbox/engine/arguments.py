"""Checks of a model's tool-call arguments; a malformed call is answered with an error it can correct.

A client function's arguments must be a JSON object with the function's required fields (the
client would otherwise get a call it cannot parse). The code tool also takes raw code, so only
arguments that start like JSON (`{`) and are not a {"code": "…"} object are refused.
"""

from __future__ import annotations

import json
from typing import Any

from agentbox.engine.prompt import CODE_TOOL_NAME


def function_problem(name: str, arguments: str, parameters: dict[str, Any] | None) -> str | None:
    """What is wrong with a function call's arguments, as the tool result the model reads; None if fine."""
    again = f"the call was not made. Call {name} again with a JSON object that matches its parameters."
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        return f"Error: the arguments of {name} were not valid JSON ({_where(exc)}); {again}"
    if not isinstance(parsed, dict):
        return f"Error: the arguments of {name} were not a JSON object; {again}"
    required = (parameters or {}).get("required") or []
    missing = [str(field) for field in required if field not in parsed]
    if missing:
        listed = ", ".join(repr(field) for field in missing)
        return f"Error: the arguments of {name} lack the required field(s) {listed}; {again}"
    return None


def code_problem(arguments: str) -> str | None:
    """What is wrong with a code call's arguments; None when they are {"code": "…"} or raw code."""
    if not arguments.lstrip().startswith("{"):
        return None
    again = f'nothing ran. Call {CODE_TOOL_NAME} again with the arguments {{"code": "<Python code>"}}.'
    try:
        parsed = json.loads(arguments, strict=False)  # as toolsteps.code_of reads them
    except json.JSONDecodeError as exc:
        return f"Error: the arguments of {CODE_TOOL_NAME} were not valid JSON ({_where(exc)}); {again}"
    if not isinstance(parsed, dict) or not isinstance(parsed.get("code"), str):
        return f"Error: the arguments of {CODE_TOOL_NAME} lack the string field 'code'; {again}"
    return None


def _where(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at character {exc.pos}"
