"""file_search is refused wherever a client can ask for it, until agentbox has vector stores.

Accepting it and running without it would let the model answer as if it had searched the files,
from nothing. Every check takes the request as plain JSON values and names the offending field
in `param`, as OpenAI does ('tools[1].type', 'tool_resources.file_search').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from agentbox.errors import InvalidRequest

TOOL = "file_search"
MESSAGE = (
    "file_search is not supported by this server yet: it has no vector stores. "
    "Use the code_interpreter tool (attach the files to it) or function tools instead."
)


def refuse(param: str) -> NoReturn:
    raise InvalidRequest(MESSAGE, param=param, code="unsupported_tool")


def check_tools(tools: Sequence[Mapping[str, Any]] | None, prefix: str = "tools") -> None:
    for index, tool in enumerate(tools or ()):
        if tool.get("type") == TOOL:
            refuse(f"{prefix}[{index}].type")


def check_tool_choice(choice: Any, param: str = "tool_choice") -> None:
    """A choice naming file_search: {"type": "file_search"}, or the bare name some clients send."""
    if choice == TOOL or (isinstance(choice, Mapping) and choice.get("type") == TOOL):
        refuse(param)


def check_tool_resources(resources: Mapping[str, Any] | None, prefix: str = "tool_resources") -> None:
    if resources and resources.get(TOOL) is not None:
        refuse(f"{prefix}.{TOOL}")


def check_attachments(attachments: Sequence[Mapping[str, Any]] | None, prefix: str) -> None:
    for index, attachment in enumerate(attachments or ()):
        check_tools(attachment.get("tools"), f"{prefix}[{index}].tools")
