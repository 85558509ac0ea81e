"""What an Assistants stream showed a client, recorded through the openai SDK's event handler."""

from __future__ import annotations

from openai import AssistantEventHandler
from typing_extensions import override


class Recorder(AssistantEventHandler):
    """Each event's name, and the text, code input and logs the deltas carried, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.text: list[str] = []
        self.code: list[str] = []
        self.logs: list[str] = []

    @override
    def on_event(self, event: object) -> None:
        self.names.append(event.event)  # type: ignore[attr-defined]

    @override
    def on_text_delta(self, delta: object, snapshot: object) -> None:
        self.text.append(delta.value or "")  # type: ignore[attr-defined]

    @override
    def on_tool_call_delta(self, delta: object, snapshot: object) -> None:
        interpreter = delta.code_interpreter  # type: ignore[attr-defined]
        if interpreter is not None and interpreter.input:
            self.code.append(interpreter.input)
        for output in (interpreter.outputs or []) if interpreter is not None else []:
            if output.type == "logs":
                self.logs.append(output.logs)
