"""Tool calling for models that have none: code in ```python blocks, function calls in ```json blocks.

A model configured `native_tools = false` is sent no `tools`. Its system message says instead how
to ask for code to run, and the conversation's tool calls and results are rewritten as the text
such a model writes and reads. Its answer is read as it streams: prose goes out as text, a
```python block becomes a call of the code tool (its code streamed as the call's arguments), a
```json {"name": …, "arguments": …} block naming an offered function becomes that function's call.
The turn ends at the first such block, as a stop sequence would end it: what a model writes after
its code is a guess at the output, not the output.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, suppress
from dataclasses import replace
from enum import Enum, auto
from typing import Any

from agentbox.ids import new_id
from agentbox.llm.base import (
    ChatRequest,
    Completion,
    ModelEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    closing_stream,
)
from agentbox.llm.chunks import estimate_tokens, prompt_chars

NativeStream = Callable[[ChatRequest], AsyncIterator[ModelEvent]]
Event = TextDelta | ToolCallDelta

PYTHON_FENCES = frozenset({"python", "py", "python3"})
OUTPUT_PREFIX = "Output of the code:\n"


async def stream_fenced(native: NativeStream, request: ChatRequest) -> AsyncIterator[ModelEvent]:
    """One turn of a model without tool calling, seen by the engine as a model with tools."""
    code_tool = _code_tool(request.tools)
    functions = [t["function"] for t in request.tools if t.get("function") is not code_tool]
    history = _rewrite_history(request.messages, code_tool["name"] if code_tool else None)
    plain = replace(
        request,
        messages=_with_instructions(history, code_tool, functions, request),
        tools=[],
        tool_choice=None,
        parallel_tool_calls=None,
    )
    if code_tool is None and not functions:
        async with aclosing(closing_stream(native(plain))) as events:
            async for event in events:
                if not isinstance(event, ToolCallDelta):  # none were offered
                    yield event
        return
    reader = FenceReader(code_tool["name"] if code_tool else None, {f["name"] for f in functions})
    native_completion: Completion | None = None
    streamed = False
    async with aclosing(closing_stream(native(plain))) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                streamed = True
                for out in reader.feed(event.text):
                    yield out
                if reader.call is not None:
                    break  # the code is whole: stop the model before it imagines the output
            elif isinstance(event, Completion):
                native_completion = event
    if reader.call is None and native_completion is not None and not streamed and native_completion.text:
        for out in reader.feed(native_completion.text):  # a provider that sent the answer whole
            yield out
    if reader.call is None:
        for out in reader.end():
            yield out
    if reader.call is not None and native_completion is None:
        yield Completion(
            text=reader.text,
            tool_calls=(reader.call,),
            # The provider's usage never came (its stream was closed at the block): estimated, as
            # for a stream without usage.
            prompt_tokens=estimate_tokens(prompt_chars(plain.messages)),
            completion_tokens=estimate_tokens(len(reader.read)),
            finish_reason="tool_calls",
        )
    elif native_completion is not None:
        calls = (reader.call,) if reader.call is not None else ()
        yield replace(
            native_completion,
            text=reader.text,
            tool_calls=calls,
            finish_reason="tool_calls" if calls else native_completion.finish_reason,
        )


def _code_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The engine's code tool: the function whose one parameter is the `code` string.

    Known by its shape, not its name, so the llm layer needs nothing from the engine."""
    for tool in tools:
        function = tool.get("function") or {}
        properties = (function.get("parameters") or {}).get("properties") or {}
        if set(properties) == {"code"} and properties["code"].get("type") == "string":
            return function  # the very dict: the other tools are told from it by identity
    return None


# ---- the prompt ----------------------------------------------------------------------------------


def instructions(code_tool: dict[str, Any] | None, functions: list[dict[str, Any]], tool_choice: Any) -> str:
    """What the system message adds so that the model asks for tools in text."""
    parts: list[str] = []
    if code_tool is not None:
        parts.append(
            "You can run Python code. To run code, write it in a fenced block: a line ```python, the "
            "code, then a line ```. Write nothing after the block: the code runs as soon as the block "
            "is closed, and its output comes back to you in the next message, starting "
            f'"{OUTPUT_PREFIX.strip()}". '
            "Write a ```python block only for code you want run now. Once you have what you need, "
            "answer without a ```python block."
        )
        if code_tool.get("description"):
            parts.append(f"How the code runs: {code_tool['description']}")
    if functions:
        listed = "\n".join(
            f"- {f['name']}: {f.get('description') or '(no description)'} "
            f"Arguments (JSON schema): {json.dumps(f.get('parameters') or {})}"
            for f in functions
        )
        parts.append(
            "You can call these functions of the user's application. To call one, write a fenced "
            'block: a line ```json, then {"name": "<function name>", "arguments": {…}}, then a line '
            "```, and write nothing after it. Its result comes back to you in the next message.\n" + listed
        )
    forced = _forced(tool_choice, code_tool)
    if forced:
        parts.append(forced)
    return "\n\n".join(parts)


def _forced(tool_choice: Any, code_tool: dict[str, Any] | None) -> str:
    if tool_choice == "required":
        return "Answer this turn with one of those blocks."
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        if code_tool is not None and name == code_tool["name"]:
            return "Answer this turn with a ```python block."
        if name:
            return f"Answer this turn by calling the function {name} in a ```json block."
    return ""


def _with_instructions(
    messages: list[dict[str, Any]],
    code_tool: dict[str, Any] | None,
    functions: list[dict[str, Any]],
    request: ChatRequest,
) -> list[dict[str, Any]]:
    added = instructions(code_tool, functions, request.tool_choice)
    if not added:
        return messages
    for i, message in enumerate(messages):
        if message.get("role") in ("system", "developer"):
            return [
                *messages[:i],
                {**message, "content": _append(message.get("content"), added)},
                *messages[i + 1 :],
            ]
    return [{"role": "system", "content": added}, *messages]


def _append(content: Any, text: str) -> Any:
    if isinstance(content, list):
        return [*content, {"type": "text", "text": text}]
    return f"{content}\n\n{text}" if content else text


# ---- the history ---------------------------------------------------------------------------------


def _rewrite_history(messages: list[dict[str, Any]], code_tool: str | None) -> list[dict[str, Any]]:
    """Tool calls become the blocks the model would have written; results become user messages.

    A call is the code tool's by its name, or by its arguments' shape when the tool is not offered.

    A result joins a user message right before it (several calls in one turn, or a result then the
    user's next message), since many chat templates refuse two user messages in a row."""
    names: dict[str, str] = {}
    code_calls: set[str] = set()
    rewritten: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            blocks = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "")
                code = _code_argument(function.get("arguments", ""), function.get("name"), code_tool)
                if code is not None:
                    code_calls.add(call.get("id", ""))
                    blocks.append(f"```python\n{code}\n```")
                else:
                    blocks.append(f"```json\n{_call_json(function)}\n```")
            text = "\n\n".join([*([message["content"]] if message.get("content") else []), *blocks])
            rewritten.append({"role": "assistant", "content": text})
        elif role == "tool":
            call_id = message.get("tool_call_id", "")
            prefix = (
                OUTPUT_PREFIX if call_id in code_calls else f"Result of {names.get(call_id) or 'the call'}:\n"
            )
            _add_user(rewritten, _append_to_front(prefix, message.get("content")))
        elif role == "user" and rewritten and rewritten[-1].get("_result"):
            _add_user(rewritten, message.get("content"))
        else:
            rewritten.append(message)
    return [{k: v for k, v in m.items() if k != "_result"} for m in rewritten]


def _code_argument(arguments: str, name: str | None, code_tool: str | None) -> str | None:
    """The code of a code-tool call (JSON arguments or, as some models send it, raw code), or
    None when the call is a function's."""
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        parsed = None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    if code_tool is not None:
        if name != code_tool:
            return None
        return code if isinstance(code, str) else arguments
    shaped = isinstance(parsed, dict) and set(parsed) == {"code"} and isinstance(code, str)
    return code if shaped else None


def _call_json(function: dict[str, Any]) -> str:
    arguments: Any = function.get("arguments", "")
    with suppress(json.JSONDecodeError, TypeError):
        arguments = json.loads(arguments)
    return json.dumps({"name": function.get("name", ""), "arguments": arguments})


def _append_to_front(prefix: str, content: Any) -> Any:
    if isinstance(content, list):
        return [{"type": "text", "text": prefix}, *content]
    return prefix + str(content or "")


def _add_user(rewritten: list[dict[str, Any]], content: Any) -> None:
    last = rewritten[-1] if rewritten else None
    if last is not None and last.get("role") == "user":
        if isinstance(last["content"], str) and isinstance(content, str):
            joined: Any = f"{last['content']}\n\n{content}"
        else:
            joined = [*_parts(last["content"]), *_parts(content)]
        rewritten[-1] = {**last, "content": joined, "_result": True}
    else:
        rewritten.append({"role": "user", "content": content, "_result": True})


def _parts(content: Any) -> list[dict[str, Any]]:
    return list(content) if isinstance(content, list) else [{"type": "text", "text": str(content or "")}]


# ---- the answer ----------------------------------------------------------------------------------


class _State(Enum):
    PROSE = auto()  # text for the user
    OTHER_BLOCK = auto()  # a fenced block of another language: text for the user too
    CODE = auto()  # a ```python block: the code tool's arguments
    JSON = auto()  # a ```json block: held until it is known to be a function call or not
    DONE = auto()  # a call is whole; the turn is over


class FenceReader:
    """Splits a streamed answer into text and at most one tool call, as pieces arrive.

    Text that could still become an opening fence (the start of a line, up to its end when it
    begins with ```) is held back; so is whitespace before a block, so the message does not end in
    blank lines. `text` is everything sent as TextDelta; `call` is set once a call is whole.
    """

    def __init__(self, code_tool: str | None, functions: set[str]) -> None:
        self._code_tool = code_tool
        self._functions = functions
        self._state = _State.PROSE
        self._line = ""  # the line being read, without its newline
        self._line_sent = 0  # how much of it already went out (it cannot be a fence then)
        self._blank = ""  # whitespace held back after the last prose
        self._indent = 0  # the opening fence's indent, removed from the code's lines
        self._code_lines = 0
        self._code = ""
        self._call_id = ""
        self._held: list[str] = []  # a JSON block's lines, as written
        self.text = ""
        self.read = ""
        self.call: ToolCall | None = None

    def feed(self, piece: str) -> list[Event]:
        out: list[Event] = []
        for chunk in _lines(piece):
            if self._state is _State.DONE:
                break
            self.read += chunk
            if chunk.endswith("\n"):
                self._line += chunk.rstrip("\r\n")
                self._whole_line(out, "\n")
            else:
                self._line += chunk
                self._partial_line(out)
        return out

    def end(self) -> list[Event]:
        """The stream is over: flush what was held; an unclosed ```python block still runs."""
        out: list[Event] = []
        if self._state is not _State.DONE and self._line:
            self._whole_line(out, "")
        if self._state is _State.CODE:
            self._close_code(out)
        elif self._state is _State.JSON:
            self._close_json(out)
        if self._state is not _State.DONE and self._blank:
            out.append(self._text(self._blank))
            self._blank = ""
        return out

    def _partial_line(self, out: list[Event]) -> None:
        if self._line_sent == 0 and _maybe_fence(self._line):
            return
        if self._state in (_State.PROSE, _State.OTHER_BLOCK):
            self._prose(self._line[self._line_sent :], out)
        elif self._state is _State.CODE:
            self._code_piece(out)
        else:
            return  # a JSON block is held whole
        self._line_sent = len(self._line)

    def _whole_line(self, out: list[Event], newline: str) -> None:
        line = self._line
        fence = self._line_sent == 0 and line.strip().startswith("```")
        if self._state is _State.PROSE:
            if fence:
                self._open(line, newline, out)
            else:
                self._prose(line[self._line_sent :] + newline, out)
        elif self._state is _State.OTHER_BLOCK:
            self._prose(line[self._line_sent :] + newline, out)
            if fence and _closing(line):
                self._state = _State.PROSE
        elif self._state is _State.CODE:
            if fence and _closing(line):
                self._close_code(out)
            else:
                self._code_piece(out)
        elif self._state is _State.JSON:
            self._held.append(line + newline)
            if fence and _closing(line):
                self._close_json(out)
        self._line, self._line_sent = "", 0

    def _open(self, line: str, newline: str, out: list[Event]) -> None:
        info = line.strip()[3:].strip().lower()
        if self._code_tool is not None and info in PYTHON_FENCES:
            self._state = _State.CODE
            self._indent = len(line) - len(line.lstrip(" \t"))
            self._blank = ""
            self._call_id = new_id("call_")
            out.append(ToolCallDelta(0, self._call_id, self._code_tool, '{"code": "'))
        elif self._functions and info == "json":
            self._state = _State.JSON
            self._held = [line + newline]
        else:
            self._state = _State.OTHER_BLOCK
            self._prose(line + newline, out)

    def _prose(self, text: str, out: list[Event]) -> None:
        whole = self._blank + text
        shown = whole.rstrip()
        self._blank = whole[len(shown) :]
        if shown:
            out.append(self._text(shown))

    def _text(self, text: str) -> TextDelta:
        self.text += text
        return TextDelta(text)

    def _code_piece(self, out: list[Event]) -> None:
        """The unsent part of the current code line, as a piece of the call's JSON arguments."""
        line = self._line
        if self._line_sent == 0:
            indent = len(line) - len(line.lstrip(" \t"))
            piece = ("\n" if self._code_lines else "") + line[min(indent, self._indent) :]
            self._code_lines += 1
        else:
            piece = line[self._line_sent :]
        if piece:
            self._code += piece
            out.append(ToolCallDelta(0, None, None, json.dumps(piece)[1:-1]))

    def _close_code(self, out: list[Event]) -> None:
        assert self._code_tool is not None
        out.append(ToolCallDelta(0, None, None, '"}'))
        self.call = ToolCall(self._call_id, self._code_tool, json.dumps({"code": self._code}))
        self._state = _State.DONE

    def _close_json(self, out: list[Event]) -> None:
        inner = self._held[1:-1] if len(self._held) > 1 and _closing(self._held[-1]) else self._held[1:]
        call = _function_call("".join(inner), self._functions)
        if call is None:  # JSON for the user, not a call: show it as written
            self._state = _State.PROSE
            self._prose("".join(self._held), out)
        else:
            name, arguments = call
            self._blank = ""
            call_id = new_id("call_")
            out.append(ToolCallDelta(0, call_id, name, arguments))
            self.call = ToolCall(call_id, name, arguments)
            self._state = _State.DONE
        self._held = []


def _lines(text: str) -> list[str]:
    """`text` cut after each newline (only "\\n": other line breaks are text within a line)."""
    pieces = text.split("\n")
    return [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def _maybe_fence(line: str) -> bool:
    """Whether a partial line could still turn out to be a fence (so must not go out yet)."""
    start = line.lstrip(" \t")
    return start.startswith("```") or "```".startswith(start)


def _closing(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= 3 and set(stripped) == {"`"}


def _function_call(block: str, functions: set[str]) -> tuple[str, str] | None:
    """(name, JSON arguments) when a ```json block calls an offered function."""
    try:
        parsed = json.loads(textwrap.dedent(block))
    except json.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or parsed.get("name") not in functions:
        return None
    arguments = parsed.get("arguments", parsed.get("parameters", {}))
    return str(parsed["name"]), arguments if isinstance(arguments, str) else json.dumps(arguments)
