"""A response on the shared agent loop: output items and `response.*` events in the SDK's order.

Per code call:   output_item.added → code_interpreter_call.in_progress → code.delta… → code.done →
                 interpreting → completed → output_item.done
Per answer:      output_item.added → content_part.added → output_text.delta… → annotation.added… →
                 output_text.done → content_part.done → output_item.done
Per function:    output_item.added → function_call_arguments.delta… → .done → output_item.done
Per search call: see search_calls.py; an answer's citation markers leave its text (markers.py).
Every event carries the response's next sequence_number (spec §2.5).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agentbox.engine import outputs
from agentbox.engine.citations import Markers
from agentbox.engine.events import RunEvents
from agentbox.engine.responses.items import Item, present, snapshot
from agentbox.engine.responses.markers import MarkerFilter
from agentbox.engine.responses.search_calls import SearchCall
from agentbox.engine.surface import CodeSink, FunctionSink, MessageSink, RunFailed, SearchSink
from agentbox.engine.toolsteps import code_of, partial_code
from agentbox.errors import StorageFull, StoreUnavailable
from agentbox.ids import new_id
from agentbox.llm.base import Completion, ToolCall
from agentbox.retrieval.results import SearchResult
from agentbox.sandbox import Execution, ExecutionStatus
from agentbox.store.records import ContainerFileRecord

Collect = Callable[[str, Sequence[str]], Awaitable[list[ContainerFileRecord]]]
"""Turns the names an execution wrote in a container's /mnt/data into container files."""
FileForPath = Callable[[str, str], Awaitable[ContainerFileRecord | None]]


class ResponseLog:
    """The numbered event log of one response, on the same RunEvents the Assistants runs use."""

    def __init__(self, events: RunEvents, response_id: str, include: Sequence[str]) -> None:
        self._events = events
        self._response_id = response_id
        self.include = tuple(include)
        self._sequence = 0
        events.open(response_id)

    async def emit(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        await self._events.publish(self._response_id, kind, payload)

    def item(self, item: Item) -> Item:
        return present(snapshot(item), self.include)


class ResponseSurface:
    """Collects a response's output items while emitting their events."""

    def __init__(
        self,
        log: ResponseLog,
        container_id: str | None,
        collect: Collect,
        file_for_path: FileForPath,
        markers: Markers | None = None,
    ) -> None:
        self.log = log
        self.output: list[Item] = []
        self.container_id = container_id
        self._collect = collect
        self._file_for_path = file_for_path
        self.written: dict[str, ContainerFileRecord] = {}
        """Container files the code wrote during this response, by name in /mnt/data."""
        self._answer: _Answer | None = None
        self.markers: Markers = dict(markers or {})
        """The citation markers the model has read (its context's search calls, then this
        response's), so an answer's citations resolve."""

    async def add(self, item: Item) -> int:
        self.output.append(item)
        index = len(self.output) - 1
        await self.log.emit("response.output_item.added", output_index=index, item=self.log.item(item))
        return index

    async def done(self, index: int) -> None:
        await self.log.emit(
            "response.output_item.done", output_index=index, item=self.log.item(self.output[index])
        )

    def message(self) -> MessageSink:
        self._answer = _Answer(self)
        return self._answer

    def cut(self) -> None:
        """The response failed: an item it interrupted (an answer mid-stream, a call that never
        ran) keeps what it got, incomplete, so no item of a finished response stays in progress."""
        if self._answer is not None:
            self._answer.keep_text()
        for item in self.output:
            if item.get("status") in ("in_progress", "interpreting"):
                item["status"] = "incomplete"

    async def search_call(self, model_call_id: str | None) -> SearchSink:
        return await SearchCall.start(self)

    async def code_call(self, model_call_id: str | None) -> CodeSink:
        item: Item = {
            "type": "code_interpreter_call",
            "id": new_id("ci_"),
            "status": "in_progress",
            "code": None,
            "container_id": self.container_id,
            "outputs": None,
        }
        index = await self.add(item)
        await self.log.emit(
            "response.code_interpreter_call.in_progress", output_index=index, item_id=item["id"]
        )
        return _CodeCall(self, item, index)

    async def function_call(self, model_call_id: str | None, name: str) -> FunctionSink | None:
        item: Item = {
            "type": "function_call",
            "id": new_id("fc_"),
            "call_id": model_call_id or new_id("call_"),
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        return _FunctionCall(self, item, await self.add(item))

    async def function_results(
        self, calls: list[ToolCall], sinks: list[FunctionSink | None], completion: Completion
    ) -> dict[str, str] | None:
        """The response ends with its function calls; the client answers in its next request."""
        for call, sink in zip(calls, sinks, strict=True):
            if isinstance(sink, _FunctionCall):
                await sink.finish(call)
        return None

    async def cite(self, name: str) -> ContainerFileRecord | None:
        if name in self.written:
            return self.written[name]
        if self.container_id is None:
            return None
        return await self._file_for_path(self.container_id, name)

    async def collect(self, changed: Sequence[str]) -> None:
        if self.container_id is None or not changed:
            return
        try:
            collected = await self._collect(self.container_id, changed)
        except (StorageFull, StoreUnavailable) as exc:
            raise RunFailed(exc.message, code="server_error") from exc  # the response fails, saying why
        for record in collected:
            self.written[record.path.removeprefix("/mnt/data/")] = record


class _Answer:
    def __init__(self, surface: ResponseSurface) -> None:
        self._surface = surface
        self._item: Item | None = None
        self._index = 0
        self._text: list[str] = []
        """The answer as shown: markers removed when the model has search results to cite."""
        self._filter = MarkerFilter(surface.markers) if surface.markers else None

    @property
    def started(self) -> bool:
        return self._item is not None

    async def _start(self) -> None:
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        self._item = {
            "type": "message",
            "id": new_id("msg_"),
            "status": "in_progress",
            "role": "assistant",
            "content": [part],
        }
        self._index = await self._surface.add({**self._item, "content": []})
        self._surface.output[self._index] = self._item
        await self._surface.log.emit(
            "response.content_part.added",
            item_id=self._item["id"],
            output_index=self._index,
            content_index=0,
            part=snapshot(part),
        )

    def keep_text(self) -> None:
        if self._item is not None:
            rest = self._filter.flush() if self._filter is not None else ""
            self._item["content"][0]["text"] = "".join(self._text) + rest

    async def write(self, text: str) -> None:
        if self._item is None:
            await self._start()
        assert self._item is not None
        await self._delta(self._filter.feed(text) if self._filter is not None else text)

    async def _delta(self, text: str) -> None:
        if not text:
            return
        assert self._item is not None
        self._text.append(text)
        await self._surface.log.emit(
            "response.output_text.delta",
            item_id=self._item["id"],
            output_index=self._index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    async def finish(self, completion: Completion, incomplete_reason: str | None) -> None:
        if self._item is None:
            await self._start()
        assert self._item is not None
        if self._filter is not None:
            await self._delta(self._filter.flush())
        log = self._surface.log
        text = "".join(self._text)
        part = self._item["content"][0]
        part["text"] = text
        annotations = await self._annotations(text)
        for index, annotation in enumerate(annotations):
            part["annotations"].append(annotation)
            await log.emit(
                "response.output_text.annotation.added",
                item_id=self._item["id"],
                output_index=self._index,
                content_index=0,
                annotation_index=index,
                annotation=dict(annotation),
            )
        common = {"item_id": self._item["id"], "output_index": self._index, "content_index": 0}
        await log.emit("response.output_text.done", **common, text=text, logprobs=[])
        await log.emit("response.content_part.done", **common, part=snapshot(part))
        self._item["status"] = "incomplete" if incomplete_reason else "completed"
        await self._surface.done(self._index)

    async def _annotations(self, text: str) -> list[dict[str, Any]]:
        """A file_citation per passage cited, a container_file_citation per linked file, then one
        per other file the code wrote."""
        passages = self._filter.cited if self._filter is not None else []
        annotations = [_file_citation(index, result) for index, result in passages]
        cited: set[str] = set()
        for _link, start, end, name in outputs.linked_names(text):
            record = await self._surface.cite(name)
            if record is not None:
                annotations.append(_citation(record, name, start, end))
                cited.add(name)
        for name, record in self._surface.written.items():
            if name not in cited:
                annotations.append(_citation(record, name, 0, 0))
                cited.add(name)
        self._surface.written.clear()  # cited once, in the answer that follows the code
        return annotations


def _file_citation(index: int, result: SearchResult) -> dict[str, Any]:
    return {"type": "file_citation", "file_id": result.file_id, "filename": result.filename, "index": index}


def _citation(record: ContainerFileRecord, name: str, start: int, end: int) -> dict[str, Any]:
    return {
        "type": "container_file_citation",
        "container_id": record.container_id,
        "file_id": record.id,
        "filename": name.rsplit("/", 1)[-1],
        "start_index": start,
        "end_index": end,
    }


class _CodeCall:
    def __init__(self, surface: ResponseSurface, item: Item, index: int) -> None:
        self._surface = surface
        self._item = item
        self._index = index
        self._arguments = ""
        self._streamed = ""

    async def arguments(self, piece: str) -> None:
        self._arguments += piece
        code = partial_code(self._arguments)
        if len(code) > len(self._streamed) and code.startswith(self._streamed):
            await self._delta(code[len(self._streamed) :])

    async def complete(self, call: ToolCall) -> str:
        code = code_of(call.arguments)
        if code.startswith(self._streamed) and len(code) > len(self._streamed):
            await self._delta(code[len(self._streamed) :])
        self._item["code"] = code
        log = self._surface.log
        ids = {"item_id": self._item["id"], "output_index": self._index}
        await log.emit("response.code_interpreter_call_code.done", **ids, code=code)
        self._item["status"] = "interpreting"
        await log.emit("response.code_interpreter_call.interpreting", **ids)
        return code

    async def output(self, stream: str, text: str) -> None:
        """Responses has no event for a running call's output: it arrives with the item's outputs
        at response.output_item.done (docs/compatibility.md)."""

    async def finish(self, code: str, execution: Execution, completion: Completion) -> str:
        await self._surface.collect(execution.changed_files)
        results: list[dict[str, Any]] = []
        if execution.logs:
            results.append({"type": "logs", "logs": execution.logs})
        for data in execution.images:
            url = "data:" + _mime(data) + ";base64," + base64.b64encode(data).decode("ascii")
            results.append({"type": "image", "url": url})
        self._item["outputs"] = results
        self._item["status"] = "failed" if execution.status is ExecutionStatus.KILLED else "completed"
        await self._surface.log.emit(
            "response.code_interpreter_call.completed", item_id=self._item["id"], output_index=self._index
        )
        await self._surface.done(self._index)
        shown = [outputs.StoredImage("") for _ in execution.images]
        return outputs.model_feedback(execution, shown)

    async def reject(self, call: ToolCall, problem: str) -> None:
        """Nothing ran: the item ends incomplete with what the model sent (items.to_chat skips it)."""
        self._item.update(code=call.arguments, status="incomplete", outputs=[])
        await self._surface.done(self._index)

    async def _delta(self, text: str) -> None:
        self._streamed += text
        await self._surface.log.emit(
            "response.code_interpreter_call_code.delta",
            item_id=self._item["id"],
            output_index=self._index,
            delta=text,
        )


class _FunctionCall:
    def __init__(self, surface: ResponseSurface, item: Item, index: int) -> None:
        self._surface = surface
        self._item = item
        self._index = index

    async def arguments(self, piece: str) -> None:
        if not piece:
            return
        self._item["arguments"] += piece
        await self._surface.log.emit(
            "response.function_call_arguments.delta",
            item_id=self._item["id"],
            output_index=self._index,
            delta=piece,
        )

    async def finish(self, call: ToolCall) -> None:
        self._item["arguments"] = call.arguments
        self._item["status"] = "completed"
        await self._surface.log.emit(
            "response.function_call_arguments.done",
            item_id=self._item["id"],
            output_index=self._index,
            name=self._item["name"],
            arguments=call.arguments,
        )
        await self._surface.done(self._index)

    async def reject(self, call: ToolCall, problem: str) -> None:
        """Not handed to the client: the item ends incomplete (items.to_chat skips it) and the model
        corrects its call in this same response."""
        self._item["arguments"] = call.arguments
        self._item["status"] = "incomplete"
        await self._surface.done(self._index)


def _mime(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF":
        return "image/webp"
    return "image/png"
