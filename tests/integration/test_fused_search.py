"""file_search with an embeddings endpoint configured, as a user of the openai SDK meets it: chunks
embedded at ingestion, a paraphrase that shares no word with the passage found first through the
fused search (full text alone finds nothing), an endpoint answering 500 mid-search leaving the
full-text results (no 5xx to the client), and a Responses run searching and citing by meaning.

The endpoint is the scripted model's real /v1/embeddings on loopback (tests/scripted_embeddings.py:
vectors of concept families, so "automobile" lands beside "sedan")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import openai
import pytest
from openai.types.responses import (
    FileSearchToolParam,
    ResponseFileSearchToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_output_text import AnnotationFileCitation

from tests.conftest import API_KEY
from tests.documents import write_docx
from tests.live_server import LiveServer
from tests.model_replies import function_call
from tests.scripted_model import Messages, ScriptedModel, Text, last_tool_output

pytestmark = pytest.mark.slow

EMBEDDINGS_MODEL = "concepts-v1"
EMBEDDINGS_KEY = "sk-embeddings"
GARAGE = "The sedan needs new tyres before the winter rally at Kessel."
ISLAND = "The quokka lives on Rottnest Island and sleeps through the hot day."
BAKERY = "A sourdough loaf needs a long cold proof overnight."
PARAPHRASE = "automobile upkeep"
"""Shares no word (nor stem) with any passage: only the embeddings relate it to GARAGE."""
FAILED = 3
"""Answers of 500 that use up the server's embeddings attempts (one try and two retries)."""
BLOCK = re.compile(r"(【\d+:\d+†[^】]*】)\n([^【]*)")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, scripted_model_server: ScriptedModel
) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("fused-search") / "data",
        API_KEY,
        AGENTBOX_POOL_SIZE="0",
        AGENTBOX_MODEL_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_MODEL_API_KEY="scripted",
        AGENTBOX_EMBEDDINGS_BASE_URL=scripted_model_server.base_url,
        AGENTBOX_EMBEDDINGS_MODEL=EMBEDDINGS_MODEL,
        AGENTBOX_EMBEDDINGS_API_KEY=EMBEDDINGS_KEY,
    ).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def sdk(server: LiveServer) -> Iterator[openai.OpenAI]:
    with server.sdk() as client:
        yield client


@pytest.fixture(scope="module")
def library(
    sdk: openai.OpenAI, scripted_model_server: ScriptedModel, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A store with three files on distinct topics, each embedded by the endpoint at ingestion."""
    folder = tmp_path_factory.mktemp("fused-docs")
    (folder / "garage.txt").write_text(GARAGE)
    (folder / "island.md").write_text(f"# Field notes\n\n{ISLAND}\n")
    write_docx(folder / "bakery.docx", [BAKERY])
    scripted_model_server.reset()
    store = sdk.vector_stores.create(name="fused")
    ids = {"store": store.id}
    for name in ("garage.txt", "island.md", "bakery.docx"):
        with (folder / name).open("rb") as handle:
            done = sdk.vector_stores.files.upload_and_poll(
                vector_store_id=store.id, file=handle, poll_interval_ms=50
            )
        assert done.status == "completed", done.last_error
        ids[name] = done.id

    # Each file's chunks went to the configured endpoint, with its model and key.
    asked = scripted_model_server.embedding_requests
    assert len(asked) == 3 and {r.path for r in asked} == {"/v1/embeddings"}
    assert {r.body["model"] for r in asked} == {EMBEDDINGS_MODEL}
    assert {r.headers["authorization"] for r in asked} == {f"Bearer {EMBEDDINGS_KEY}"}
    sent = " ".join(text for r in asked for text in r.body["input"])
    assert GARAGE in sent and ISLAND in sent and BAKERY in sent
    return ids


def test_a_paraphrase_is_found_by_meaning(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    found = sdk.vector_stores.search(library["store"], query=PARAPHRASE)
    assert found.search_query == [PARAPHRASE]  # type: ignore[attr-defined]  # the page's own field
    best = found.data[0]
    assert best.file_id == library["garage.txt"] and best.filename == "garage.txt"
    assert best.content[0].text == GARAGE
    assert 0 < best.score <= 1
    assert [r.score for r in found.data] == sorted((r.score for r in found.data), reverse=True)
    (asked,) = scripted_model.embedding_requests  # the query itself was embedded
    assert asked.body["input"] == [PARAPHRASE]

    # A query sharing words is still ranked first by both: the fused top scores 1.
    quokka = sdk.vector_stores.search(library["store"], query="Where does the quokka sleep?")
    assert quokka.data[0].file_id == library["island.md"] and quokka.data[0].score == pytest.approx(1.0)


def test_a_failing_endpoint_leaves_the_full_text_results(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    scripted_model.script_embeddings(*[500] * FAILED)
    found = sdk.vector_stores.search(library["store"], query="Where does the quokka sleep?")
    assert found.data[0].file_id == library["island.md"]
    assert found.data[0].content[0].text.strip().endswith(ISLAND)
    assert len(scripted_model.embedding_requests) == FAILED  # tried, retried, then full text alone

    # Full text alone knows no word of the paraphrase: the embeddings were what found it.
    scripted_model.script_embeddings(*[500] * FAILED)
    assert sdk.vector_stores.search(library["store"], query=PARAPHRASE).data == []

    # The endpoint is back: the paraphrase is found again.
    again = sdk.vector_stores.search(library["store"], query=PARAPHRASE)
    assert again.data[0].file_id == library["garage.txt"]


def cite_the_garage(messages: Messages) -> Text:
    for marker, passage in BLOCK.findall(last_tool_output(messages)):
        if "sedan" in passage:
            return Text(f"New tyres {marker}.")
    raise AssertionError(f"the search did not give the garage passage: {last_tool_output(messages)}")


def test_a_responses_run_searches_by_meaning(
    sdk: openai.OpenAI, scripted_model: ScriptedModel, library: dict[str, str]
) -> None:
    scripted_model.script(
        function_call("file_search", json.dumps({"queries": [PARAPHRASE]})), cite_the_garage
    )
    tool: FileSearchToolParam = {
        "type": "file_search",
        "vector_store_ids": [library["store"]],
        "max_num_results": 2,
    }
    response = sdk.responses.create(
        model="scripted",
        input="What does my car need?",
        tools=[tool],
        include=["file_search_call.results"],
    )

    assert response.status == "completed", response.error
    call, message = response.output
    assert isinstance(call, ResponseFileSearchToolCall) and call.status == "completed"
    assert call.queries == [PARAPHRASE]
    assert call.results and call.results[0].file_id == library["garage.txt"]
    assert call.results[0].text == GARAGE
    assert response.output_text == "New tyres."
    assert isinstance(message, ResponseOutputMessage)
    text = message.content[0]
    assert isinstance(text, ResponseOutputText)
    (annotation,) = text.annotations
    assert isinstance(annotation, AnnotationFileCitation)
    assert annotation.file_id == library["garage.txt"] and annotation.filename == "garage.txt"
    assert [r.body["input"] for r in scripted_model.embedding_requests] == [[PARAPHRASE]]
