"""The assistant's message of a model turn: created at its first token, streamed, then annotated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agentbox.engine import citations, outputs
from agentbox.engine.publisher import Publisher
from agentbox.errors import NotFound
from agentbox.ids import new_id, now
from agentbox.store.records import MessageRecord, RunRecord, StepRecord

StoreFile = Callable[[str], Awaitable[str]]
"""Stores the session's /mnt/data/<name> as an output file; its id. NotFound if there is no such file."""


class AnswerWriter:
    """One message_creation step and its message; `image_ids` become its leading image_file parts."""

    def __init__(self, publisher: Publisher, run: RunRecord, image_ids: list[str]) -> None:
        self._publisher = publisher
        self._run = run
        self._image_ids = list(image_ids)
        self._text: list[str] = []
        self.message: MessageRecord | None = None
        self._step: StepRecord | None = None

    @property
    def started(self) -> bool:
        return self.message is not None

    async def start(self) -> None:
        run = self._run
        message = MessageRecord(
            id=new_id("msg_"),
            created_at=now(),
            thread_id=run.thread_id,
            role="assistant",
            content=[],
            status="in_progress",
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = StepRecord(
            id=new_id("step_"),
            created_at=now(),
            run_id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            type="message_creation",
            status="in_progress",
            details={"type": "message_creation", "message_creation": {"message_id": message.id}},
        )
        self._step = await self._publisher.add(step, "thread.run.step.created", "thread.run.step.in_progress")
        self.message = await self._publisher.add(
            message, "thread.message.created", "thread.message.in_progress"
        )
        for index, file_id in enumerate(self._image_ids):
            part = {"index": index, "type": "image_file", "image_file": {"file_id": file_id}}
            await self._publisher.delta("thread.message.delta", message.id, {"content": [part]})

    async def write(self, text: str) -> None:
        if not self.started:
            await self.start()
        assert self.message is not None
        first = not self._text
        self._text.append(text)
        text_part: dict[str, Any] = {"value": text}
        if first:
            text_part["annotations"] = []
        part = {"index": len(self._image_ids), "type": "text", "text": text_part}
        await self._publisher.delta("thread.message.delta", self.message.id, {"content": [part]})

    async def finish(
        self,
        store_file: StoreFile,
        usage: dict[str, int],
        incomplete: str | None,
        markers: citations.Markers | None = None,
    ) -> MessageRecord:
        """Annotate every sandbox link that names a real file and every citation of a passage the
        run's searches found (`markers`), then complete (or cut) the message."""
        if not self.started:
            await self.start()
        assert self.message is not None and self._step is not None
        text = "".join(self._text)
        annotations: list[dict[str, Any]] = []
        stored: dict[str, str] = {}
        for link_text, start, end, name in outputs.linked_names(text):
            if name not in stored:
                try:
                    stored[name] = await store_file(name)
                except NotFound:
                    continue  # the model linked a file its code never wrote; leave the text as it is
            annotations.append(outputs.annotation(link_text, start, end, stored[name]))
        for cited in citations.find(text, markers or {}):
            annotations.append(
                {
                    "type": "file_citation",
                    "text": cited.marker,
                    "start_index": cited.start,
                    "end_index": cited.end,
                    "file_citation": {"file_id": cited.result.file_id},
                }
            )
        annotations.sort(key=lambda a: int(a["start_index"]))
        if annotations:
            notes = [{"index": i, **a} for i, a in enumerate(annotations)]
            part = {"index": len(self._image_ids), "type": "text", "text": {"annotations": notes}}
            await self._publisher.delta("thread.message.delta", self.message.id, {"content": [part]})
        stamp = now()
        status_fields: dict[str, Any] = (
            {"status": "incomplete", "incomplete_at": stamp, "incomplete_reason": incomplete}
            if incomplete
            else {"status": "completed", "completed_at": stamp}
        )
        event = "thread.message.incomplete" if incomplete else "thread.message.completed"
        self.message = await self._publisher.change(
            MessageRecord,
            self.message.id,
            (event,),
            content=outputs.answer_content(text, annotations, self._image_ids),
            **status_fields,
        )
        await self._publisher.change(
            StepRecord,
            self._step.id,
            ("thread.run.step.completed",),
            status="completed",
            completed_at=stamp,
            usage=usage,
        )
        return self.message

    async def cut(self, error: dict[str, str]) -> None:
        """The run failed while this answer streamed: it keeps the text that came, incomplete."""
        if self.message is None or self._step is None or self.message.status != "in_progress":
            return
        stamp = now()
        self.message = await self._publisher.change(
            MessageRecord,
            self.message.id,
            ("thread.message.incomplete",),
            content=outputs.answer_content("".join(self._text), [], self._image_ids),
            status="incomplete",
            incomplete_at=stamp,
            incomplete_reason="run_failed",
        )
        await self._publisher.change(
            StepRecord,
            self._step.id,
            ("thread.run.step.failed",),
            status="failed",
            failed_at=stamp,
            last_error=error,
        )
