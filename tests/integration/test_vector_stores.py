"""Vector stores as a user of the openai SDK meets them: files uploaded and polled until ingested,
a Word document and a PDF made here found by what they say, attribute filters, files that cannot
be read ending failed with a reason, the file's parsed content, batches, bad input answered with
a 4xx, and the same routes under the Azure and Foundry prefixes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.documents import pdf_bytes, write_docx
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow

# Facts no model or corpus knows, so a hit can only come from the uploaded document.
DOCX_FACT = "The lighthouse keeper of Varnholm island paints the lamp room teal every April."
PDF_FACT = "Quarterly sprocket output at the Kelderwick plant reached 48213 units."
FILLER = [
    "Meeting notes cover the budget, the parking rota and the new coffee machine.",
    "Nothing else of note was discussed; the next meeting is on Thursday.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("vector-stores")
    live = LiveServer(root / "data", API_KEY, AGENTBOX_POOL_SIZE="0").start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with server.sdk() as sdk:
        yield sdk


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("documents")
    docx = write_docx(
        folder / "island.docx", [*FILLER, DOCX_FACT], table=[["Island", "Colour"], ["Varnholm", "teal"]]
    )
    pdf = folder / "plant-report.pdf"
    pdf.write_bytes(pdf_bytes([FILLER, [PDF_FACT]]))
    return {"docx": docx, "pdf": pdf}


@pytest.fixture(scope="module")
def filled(client: openai.OpenAI, documents: dict[str, Path]) -> str:
    """A store holding the docx (upload_and_poll) and the pdf (a batch's upload_and_poll)."""
    store = client.vector_stores.create(name="reports", metadata={"team": "ops"})
    attached = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=documents["docx"])
    assert attached.status == "completed", attached.last_error
    batch = client.vector_stores.file_batches.upload_and_poll(store.id, files=[documents["pdf"]])
    assert batch.status == "completed"
    assert batch.file_counts.completed == 1 and batch.file_counts.total == 1
    return store.id


def text_of(result: object) -> str:
    return " ".join(part.text for part in result.content)  # type: ignore[attr-defined]


def test_search_finds_the_passage_of_a_docx_and_of_a_pdf(client: openai.OpenAI, filled: str) -> None:
    store = client.vector_stores.retrieve(filled)
    assert store.status == "completed" and store.name == "reports" and store.metadata == {"team": "ops"}
    assert store.file_counts.completed == 2 and store.file_counts.total == 2
    assert store.usage_bytes > 0

    found = client.vector_stores.search(filled, query="What colour is the Varnholm lamp room painted?")
    assert found.data, "the docx passage was not found"
    assert found.data[0].filename == "island.docx"
    assert "Varnholm" in text_of(found.data[0]) and "teal" in text_of(found.data[0])
    assert 0 <= found.data[0].score <= 1

    found = client.vector_stores.search(filled, query="sprocket output Kelderwick")
    assert found.data[0].filename == "plant-report.pdf"
    assert "48213" in text_of(found.data[0])


def test_a_search_with_several_queries_shows_them_all(http: httpx.Client, filled: str) -> None:
    response = http.post(
        f"/vector_stores/{filled}/search", json={"query": ["Varnholm", "Kelderwick"], "max_num_results": 5}
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["Varnholm", "Kelderwick"]
    assert {r["filename"] for r in page["data"]} == {"island.docx", "plant-report.pdf"}
    assert page["has_more"] is False and page["next_page"] is None


def test_file_content_is_the_extracted_text(client: openai.OpenAI, filled: str) -> None:
    docx = next(f for f in client.vector_stores.files.list(filled) if f.status == "completed")
    pages = client.vector_stores.files.content(docx.id, vector_store_id=filled)
    text = " ".join(part.text or "" for part in pages)
    assert DOCX_FACT in text or PDF_FACT in text


def test_attribute_filters_narrow_the_search(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="filtered")
    for year in (2023, 2024):
        uploaded = client.files.create(
            file=(f"minutes-{year}.txt", f"Minutes {year}: the harbour crane was repainted.".encode()),
            purpose="assistants",
        )
        done = client.vector_stores.files.create_and_poll(
            file_id=uploaded.id, vector_store_id=store.id, attributes={"year": year, "kind": "minutes"}
        )
        assert done.status == "completed" and done.attributes == {"year": year, "kind": "minutes"}

    both = client.vector_stores.search(store.id, query="harbour crane")
    assert {r.filename for r in both.data} == {"minutes-2023.txt", "minutes-2024.txt"}

    newer = client.vector_stores.search(
        store.id, query="harbour crane", filters={"type": "gte", "key": "year", "value": 2024}
    )
    assert [r.filename for r in newer.data] == ["minutes-2024.txt"]
    assert newer.data[0].attributes == {"year": 2024, "kind": "minutes"}

    compound = client.vector_stores.search(
        store.id,
        query="harbour crane",
        filters={
            "type": "and",
            "filters": [
                {"type": "eq", "key": "kind", "value": "minutes"},
                {"type": "ne", "key": "year", "value": 2024},
            ],
        },
    )
    assert [r.filename for r in compound.data] == ["minutes-2023.txt"]


def test_an_unreadable_file_ends_failed_with_a_reason(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="broken")
    garbage = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("scan.pdf", io.BytesIO(b"\x00\x01 not a pdf at all \xff" * 50))
    )
    assert garbage.status == "failed"
    assert garbage.last_error is not None and garbage.last_error.code == "invalid_file"
    assert garbage.last_error.message

    unknown = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("data.xyz", io.BytesIO(b"some bytes"))
    )
    assert unknown.status == "failed"
    assert unknown.last_error is not None and unknown.last_error.code == "unsupported_file"

    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (2, 0, 2)
    failed = client.vector_stores.files.list(store.id, filter="failed")
    assert {f.id for f in failed} == {garbage.id, unknown.id}
    assert client.vector_stores.search(store.id, query="pdf").data == []


def test_static_chunking_cuts_a_long_file_into_overlapping_chunks(client: openai.OpenAI) -> None:
    words = " ".join(f"word{i}" for i in range(600))
    store = client.vector_stores.create(name="chunked")
    attached = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("long.txt", io.BytesIO(words.encode())),
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
        },
    )
    assert attached.status == "completed"
    strategy = attached.chunking_strategy
    assert strategy is not None and strategy.type == "static"
    assert strategy.static.max_chunk_size_tokens == 200 and strategy.static.chunk_overlap_tokens == 50  # type: ignore[union-attr]
    chunks = [
        part.text or "" for part in client.vector_stores.files.content(attached.id, vector_store_id=store.id)
    ]
    assert len(chunks) > 3
    assert "word0" in chunks[0] and "word599" in chunks[-1]

    default = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("short.txt", io.BytesIO(b"a short note"))
    )
    assert default.chunking_strategy is not None and default.chunking_strategy.type == "static"
    assert default.chunking_strategy.static.max_chunk_size_tokens == 800  # type: ignore[union-attr]


def test_files_update_detach_and_deletion(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="lifecycle")
    uploaded = client.files.create(
        file=("otters.txt", b"Sea otters hold hands while they sleep."), purpose="assistants"
    )
    client.vector_stores.files.create_and_poll(file_id=uploaded.id, vector_store_id=store.id)
    assert client.vector_stores.search(store.id, query="otters").data

    changed = client.vector_stores.files.update(
        file_id=uploaded.id, vector_store_id=store.id, attributes={"k": "v"}
    )
    assert changed.attributes == {"k": "v"}
    assert client.vector_stores.files.retrieve(file_id=uploaded.id, vector_store_id=store.id).attributes == {
        "k": "v"
    }

    gone = client.vector_stores.files.delete(file_id=uploaded.id, vector_store_id=store.id)
    assert gone.deleted and gone.object == "vector_store.file.deleted"
    assert client.vector_stores.search(store.id, query="otters").data == []
    assert client.files.retrieve(uploaded.id).id == uploaded.id  # the File stays

    # Deleting the File takes it out of every store it is in.
    client.vector_stores.files.create_and_poll(file_id=uploaded.id, vector_store_id=store.id)
    client.files.delete(uploaded.id)
    assert list(client.vector_stores.files.list(store.id)) == []
    assert client.vector_stores.search(store.id, query="otters").data == []

    deleted = client.vector_stores.delete(store.id)
    assert deleted.deleted and deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_update_list_and_expiry_policy(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="expiring", expires_after={"anchor": "last_active_at", "days": 3}
    )
    assert store.expires_after is not None and store.expires_after.days == 3
    assert store.expires_at == store.last_active_at + 3 * 86400  # type: ignore[operator]
    renamed = client.vector_stores.update(store.id, name="renamed", expires_after=None)
    assert renamed.name == "renamed" and renamed.expires_after is None and renamed.expires_at is None
    listed = [s.id for s in client.vector_stores.list(limit=100)]
    assert store.id in listed


def test_a_batch_of_file_ids_with_per_file_attributes(client: openai.OpenAI, http: httpx.Client) -> None:
    store = client.vector_stores.create(name="batch")
    ids = [
        client.files.create(
            file=(f"note{i}.md", f"# Note {i}\nThe code word is zebra{i}.".encode()), purpose="assistants"
        ).id
        for i in range(3)
    ]
    response = http.post(
        f"/vector_stores/{store.id}/file_batches",
        json={"files": [{"file_id": file_id, "attributes": {"n": i}} for i, file_id in enumerate(ids)]},
    )
    assert response.status_code == 200, response.text
    batch = client.vector_stores.file_batches.poll(response.json()["id"], vector_store_id=store.id)
    assert batch.status == "completed" and batch.file_counts.completed == 3
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert {f.id: f.attributes for f in listed} == {file_id: {"n": i} for i, file_id in enumerate(ids)}
    # Cancelling a finished batch changes nothing.
    assert client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id).status == "completed"


def test_cancelling_a_batch_ends_it(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="cancelled")
    ids = [
        client.files.create(file=(f"f{i}.txt", f"text number {i} " * 200), purpose="assistants").id
        for i in range(12)
    ]
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids)
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status in ("cancelled", "completed")
    counts = client.vector_stores.file_batches.poll(batch.id, vector_store_id=store.id).file_counts
    assert counts.in_progress == 0 and counts.total == 12
    assert counts.completed + counts.cancelled == 12


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/vector_stores/vs_nope/search", {"query": "x"}, 404, None),
        ("{store}/search", {"query": "x", "max_num_results": 0}, 400, "max_num_results"),
        ("{store}/search", {"query": "x", "max_num_results": 51}, 400, "max_num_results"),
        ("{store}/search", {"query": ""}, 400, "query"),
        (
            "{store}/search",
            {"query": "x", "filters": {"type": "like", "key": "a", "value": 1}},
            400,
            "filters",
        ),
        (
            "{store}/search",
            {"query": "x", "ranking_options": {"ranker": "best"}},
            400,
            "ranking_options.ranker",
        ),
        (
            "/vector_stores",
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                }
            },
            400,
            "chunking_strategy.static",
        ),
        (
            "/vector_stores",
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 300},
                }
            },
            400,
            "chunking_strategy.static",
        ),
        ("/vector_stores", {"chunking_strategy": {"type": "semantic"}}, 400, "chunking_strategy.type"),
        ("/vector_stores", {"file_ids": ["file-nope"]}, 400, "file_ids"),
        (
            "/vector_stores",
            {"expires_after": {"anchor": "created_at", "days": 1}},
            400,
            "expires_after.anchor",
        ),
        ("{store}/files", {"file_id": "file-nope"}, 404, "file_id"),
        ("{store}/files", {"file_id": "{file}", "attributes": {"k": ["list"]}}, 400, "attributes.k"),
        ("{store}/file_batches", {}, 400, None),
        ("{store}/file_batches", {"file_ids": ["file-nope"]}, 400, "file_ids"),
        # Azure's data sources name assets this server cannot reach: refused, never dropped.
        (
            "/vector_stores",
            {"configuration": {"data_sources": [{"uri": "azureml://x", "type": "uri_asset"}]}},
            400,
            "configuration",
        ),
        (
            "{store}/file_batches",
            {"data_sources": [{"uri": "azureml://x", "type": "uri_asset"}], "file_ids": ["{file}"]},
            400,
            "data_sources",
        ),
        (
            "/assistants",
            {"model": "m", "tool_resources": {"code_interpreter": {"data_sources": [{}]}}},
            400,
            "tool_resources.code_interpreter.data_sources",
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_parameter(
    client: openai.OpenAI,
    http: httpx.Client,
    path: str,
    body: dict[str, object],
    status: int,
    param: str | None,
) -> None:
    store = client.vector_stores.create(name="bad input")
    file_id = client.files.create(file=("ok.txt", b"fine"), purpose="assistants").id
    url = path.replace("{store}", f"/vector_stores/{store.id}")
    payload = json.loads(json.dumps(body).replace("{file}", file_id))
    response = http.post(url, json=payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param


def test_unknown_ids_are_404(client: openai.OpenAI, filled: str) -> None:
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_nope")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(file_id="file-nope", vector_store_id=filled)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.file_batches.retrieve("vsfb_nope", vector_store_id=filled)
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.files.list(filled, after="file-nope")


def test_the_azure_and_foundry_prefixes_serve_vector_stores(server: LiveServer, filled: str) -> None:
    headers = {"api-key": API_KEY}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for prefix, version in (
            ("/api/projects/p", "2025-05-15-preview"),
            ("/api/projects/p/openai/v1", None),
            ("/api/projects/p/openai", "2025-11-15-preview"),
        ):
            params = {"api-version": version} if version else {}
            found = http.get(f"{prefix}/vector_stores/{filled}", params=params)
            assert found.status_code == 200, (prefix, found.text)
            assert found.json()["file_counts"]["completed"] == 2
            searched = http.post(
                f"{prefix}/vector_stores/{filled}/search", params=params, json={"query": "Varnholm"}
            )
            assert searched.status_code == 200, (prefix, searched.text)
            assert searched.json()["data"][0]["filename"] == "island.docx"


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.http() as plain:
        yield plain
