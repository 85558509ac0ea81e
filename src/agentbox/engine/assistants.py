"""An Assistants run on the shared agent loop: run steps, messages and `thread.*` events.

The run's model conversation is built from the assistant, the thread's messages and its files;
code runs in the thread's sandbox session. Function calls pause the run in requires_action until
the client submits their outputs.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from agentbox.engine import images, outputs, prompt, search_resources
from agentbox.engine.answer import AnswerWriter
from agentbox.engine.citations import Markers
from agentbox.engine.events import RunEvents
from agentbox.engine.file_types import for_code_interpreter
from agentbox.engine.loop import AgentLoop, RunFailed, Usage, code_tool_choice, search_tool_choice
from agentbox.engine.publisher import Publisher
from agentbox.engine.run_files import OutputFiles, input_files
from agentbox.engine.search_resources import VectorStores
from agentbox.engine.surface import CodeSink, FileSearchSpec, FunctionSink, MessageSink, SearchSink, Task
from agentbox.engine.toolsteps import CodeStep, FunctionStep, SearchStep
from agentbox.errors import InvalidRequest, ModelError
from agentbox.ids import now
from agentbox.llm.base import Completion, ToolCall
from agentbox.sandbox import Execution, InputFile
from agentbox.store.blobs import BlobStore
from agentbox.store.database import Store
from agentbox.store.records import (
    AssistantRecord,
    MessageRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    ThreadRecord,
)

log = logging.getLogger(__name__)


def turn_usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _run_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


class _Answer:
    """The Assistants message of a turn; the figures shown since the last message lead it."""

    def __init__(self, surface: _RunSurface) -> None:
        self._surface = surface
        self._writer = AnswerWriter(surface.publisher, surface.run, surface.images)
        surface.answer = self._writer

    @property
    def started(self) -> bool:
        return self._writer.started

    async def write(self, text: str) -> None:
        await self._writer.write(text)

    async def finish(self, completion: Completion, incomplete_reason: str | None) -> None:
        store_file = partial(self._surface.files.session_file, self._surface.run.thread_id)
        # A message's own reason vocabulary differs from the run's (spec §1.3).
        await self._writer.finish(
            store_file,
            turn_usage(completion),
            "max_tokens" if incomplete_reason else None,
            self._surface.markers,
        )
        self._surface.images.clear()


class _CodeCall:
    def __init__(self, surface: _RunSurface, step: CodeStep) -> None:
        self._surface = surface
        self._step = step

    async def arguments(self, piece: str) -> None:
        await self._step.arguments(piece)

    async def complete(self, call: ToolCall) -> str:
        return await self._step.complete(call)

    async def output(self, stream: str, text: str) -> None:
        await self._step.output(text)  # one logs output holds both streams, as the wire has it

    async def finish(self, code: str, execution: Execution, completion: Completion) -> str:
        images = [
            outputs.StoredImage(await self._surface.files.image(f"image-{i}.png", data))
            for i, data in enumerate(execution.images, start=1)
        ]
        await self._step.finish(code, outputs.step_outputs(execution, images), turn_usage(completion))
        self._surface.images.extend(image.file_id for image in images)
        return outputs.model_feedback(execution, images)

    async def reject(self, call: ToolCall, problem: str) -> None:
        await self._step.reject(call.arguments, problem)


class _RunSurface:
    def __init__(self, runner: AssistantsRunner, publisher: Publisher, run: RunRecord) -> None:
        self._runner = runner
        self.publisher = publisher
        self.run = run
        self.files = runner.files
        self.images: list[str] = []
        self.answer: AnswerWriter | None = None
        """The newest turn's answer, cut if the run fails while it streams."""
        self.markers: Markers = {}
        """The citation markers of every search of the run (engine/citations.py)."""
        self.search: FileSearchSpec | None = None

    def message(self) -> MessageSink:
        return _Answer(self)

    async def search_call(self, model_call_id: str | None) -> SearchSink:
        ranking = search_resources.ranking_options(self.search)
        step = SearchStep(self.publisher, self.run, model_call_id, ranking, self.markers)
        await step.start()
        return step

    async def code_call(self, model_call_id: str | None) -> CodeSink:
        step = CodeStep(self.publisher, self.run, model_call_id)
        await step.start()
        return _CodeCall(self, step)

    async def function_call(self, model_call_id: str | None, name: str) -> FunctionSink | None:
        return None  # an Assistants run shows function calls only once the model's turn is over

    async def function_results(
        self, calls: list[ToolCall], sinks: list[FunctionSink | None], completion: Completion
    ) -> dict[str, str] | None:
        return await self._runner.ask_client(self.publisher, self.run, calls, completion)


class AssistantsRunner:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        loop: AgentLoop,
        events: RunEvents,
        vector_stores: VectorStores | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._loop = loop
        self._events = events
        self._vector_stores = vector_stores
        self.files = OutputFiles(store, blobs, loop)
        self._pending: dict[str, tuple[FunctionStep, asyncio.Future[dict[str, str]]]] = {}

    async def run(self, run: RunRecord) -> RunRecord:
        """Drive one queued run to a terminal state; cancellation propagates to the caller."""
        publisher = Publisher(self._store, self._events, run.id)
        run = await publisher.change(
            RunRecord, run.id, ("thread.run.in_progress",), status=RunStatus.IN_PROGRESS, started_at=now()
        )
        surface = _RunSurface(self, publisher, run)
        usage = Usage()
        try:
            task = await self._task(run)
            surface.search = task.file_search
            outcome = await self._loop.converse(task, surface, usage)
        except (ModelError, RunFailed) as exc:
            error = {"code": exc.code or "server_error", "message": exc.message}
            if surface.answer is not None:
                await surface.answer.cut(error)
            return await self._fail(publisher, run, error, usage)
        finally:
            self._pending.pop(run.id, None)
        status = RunStatus.INCOMPLETE if outcome.incomplete_reason else RunStatus.COMPLETED
        event = "thread.run.completed" if status is RunStatus.COMPLETED else "thread.run.incomplete"
        return await publisher.change(
            RunRecord,
            run.id,
            (event,),
            status=status,
            completed_at=now(),
            usage=_run_usage(usage),
            incomplete_reason=outcome.incomplete_reason,
        )

    def claim_tool_outputs(
        self, run: RunRecord, tool_outputs: dict[str, str]
    ) -> asyncio.Future[dict[str, str]]:
        """The waiter of a run in requires_action, which the outputs answer exactly; the caller
        resumes the run by setting its result. InvalidRequest if it isn't waiting, or ids don't
        match. Claimed once: a second submission finds nothing to answer."""
        pending = self._pending.get(run.id)
        if run.status is not RunStatus.REQUIRES_ACTION or pending is None or pending[1].done():
            raise not_waiting(run)
        step, waiter = pending
        check_answers({c.id for c in step.calls}, tool_outputs)
        del self._pending[run.id]
        return waiter

    def waits(self, run_id: str) -> bool:
        """Whether this replica holds the run's wait for tool outputs."""
        return run_id in self._pending

    def take_wait(self, run_id: str) -> asyncio.Future[dict[str, str]] | None:
        """The run's waiter, for outputs another replica checked and handed over."""
        pending = self._pending.pop(run_id, None)
        return pending[1] if pending is not None else None

    async def _task(self, run: RunRecord) -> Task:
        assistant = await self._store.get(AssistantRecord, run.assistant_id)
        thread = await self._store.get(ThreadRecord, run.thread_id)
        history = await self._store.all(MessageRecord, thread_id=thread.id)
        search = await self._search_spec(run, assistant, thread)
        files = await self._session_files(assistant, thread, history)
        truncation = run.options.get("truncation_strategy") or {"type": "auto"}
        if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
            history = history[-int(truncation["last_messages"]) :]
        image_urls = await images.data_urls(
            self._store, self._blobs, prompt.image_file_ids(prompt.newest_user(history))
        )
        chat = prompt.conversation(
            run.instructions,
            run.options.get("additional_instructions"),
            history,
            [f.name for f in files],
            image_urls,
        )
        return Task(
            model=run.model,
            chat=chat,
            session_key=run.thread_id,
            files=files,
            code_enabled=any(t.get("type") == "code_interpreter" for t in run.tools),
            functions=[t["function"] for t in run.tools if t.get("type") == "function" and t.get("function")],
            tool_choice=_tool_choice(run.options.get("tool_choice")),
            temperature=run.options.get("temperature"),
            top_p=run.options.get("top_p"),
            max_completion_tokens=run.options.get("max_completion_tokens"),
            max_prompt_tokens=run.options.get("max_prompt_tokens"),
            parallel_tool_calls=run.options.get("parallel_tool_calls"),
            response_format=chat_response_format(run.options.get("response_format")),
            reasoning_effort=run.options.get("reasoning_effort"),
            file_search=search,
            truncate=truncation.get("type") == "auto",
        )

    async def _search_spec(
        self, run: RunRecord, assistant: AssistantRecord, thread: ThreadRecord
    ) -> FileSearchSpec | None:
        """The run's file_search over the assistant's and the thread's stores (the latter holds the
        messages' file_search attachments: the API put them there), once their files are ingested;
        None without the tool or a store."""
        if self._vector_stores is None:
            return None
        store_ids = search_resources.run_store_ids(assistant, thread)
        spec = search_resources.search_spec(run.tools, store_ids)
        if spec is not None:
            await self._vector_stores.wait_ready(spec.vector_store_ids, search_resources.INGESTION_WAIT_S)
        return spec

    async def ask_client(
        self, publisher: Publisher, run: RunRecord, calls: list[ToolCall], completion: Completion
    ) -> dict[str, str]:
        step = FunctionStep(publisher, run, calls)
        await step.start()
        waiter: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._pending[run.id] = (step, waiter)
        required = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": step.wire_calls()}}
        await publisher.change(
            RunRecord,
            run.id,
            ("thread.run.requires_action",),
            status=RunStatus.REQUIRES_ACTION,
            required_action=required,
        )
        tool_outputs = await waiter
        await step.finish(tool_outputs, turn_usage(completion))
        return tool_outputs

    async def _fail(
        self, publisher: Publisher, run: RunRecord, error: dict[str, str], usage: Usage
    ) -> RunRecord:
        # A code step whose call never ran ends with the run, failed: none stays in_progress.
        for step in await self._store.all(StepRecord, run_id=run.id):
            if step.status == "in_progress":
                await publisher.change(
                    StepRecord,
                    step.id,
                    ("thread.run.step.failed",),
                    status="failed",
                    failed_at=now(),
                    last_error=error,
                )
        return await publisher.change(
            RunRecord,
            run.id,
            ("thread.run.failed",),
            status=RunStatus.FAILED,
            failed_at=now(),
            last_error=error,
            usage=_run_usage(usage),
        )

    async def _session_files(
        self, assistant: AssistantRecord, thread: ThreadRecord, history: list[MessageRecord]
    ) -> list[InputFile]:
        """The files placed in /mnt/data: the assistant's, the thread's, their code-interpreter vector
        stores' (once ingested, as a run waits for them), then every attachment, in order."""
        wanted: list[str] = [*assistant.file_ids, *thread.file_ids]
        code_stores = list(dict.fromkeys([*assistant.code_store_ids, *thread.code_store_ids]))
        if code_stores and self._vector_stores is not None:
            await self._vector_stores.wait_ready(code_stores, search_resources.INGESTION_WAIT_S)
            for store_id in code_stores:
                wanted.extend(await self._vector_stores.file_ids(store_id))
        for message in history:
            wanted.extend(a["file_id"] for a in message.attachments if for_code_interpreter(a))
        return await input_files(self._store, self._blobs, wanted)


def _tool_choice(choice: Any) -> Any:
    """The Assistants tool_choice in chat-completions terms ({"type":"code_interpreter"} → our tool)."""
    if isinstance(choice, dict) and choice.get("type") == "code_interpreter":
        return code_tool_choice()
    if isinstance(choice, dict) and choice.get("type") == "file_search":
        return search_tool_choice()
    if choice == "auto":
        return None
    return choice


def chat_response_format(value: Any) -> Any:
    """The Assistants response_format in chat-completions terms: JSON mode and json_schema reach the
    model as they are; "auto" and text ask for nothing."""
    if isinstance(value, dict) and value.get("type") in ("json_object", "json_schema"):
        return value
    return None


def not_waiting(run: RunRecord) -> InvalidRequest:
    return InvalidRequest(
        f"Run {run.id} is not waiting for tool outputs (status '{run.status.value}').", param="run_id"
    )


def check_answers(expected: set[str], tool_outputs: dict[str, str]) -> None:
    """InvalidRequest unless the outputs answer exactly the calls the run waits on."""
    if set(tool_outputs) != expected:
        missing = sorted(expected - set(tool_outputs))
        unknown = sorted(set(tool_outputs) - expected)
        raise InvalidRequest(
            f"Tool outputs must answer exactly the calls {sorted(expected)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
            + ".",
            param="tool_outputs",
        )
