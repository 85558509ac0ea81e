"""Conversations and their items through the real openai SDK; client mistakes as OpenAI's 4xx."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.integration.test_bad_input import error_of


def _said(item: Any) -> str:
    """The text of a message item as the SDK parsed it."""
    assert item.type == "message"
    return "".join(part.text for part in item.content)


def _ids(items: Any) -> list[str]:
    """The ids of listed items (the SDK types some item ids as optional; agentbox always sets one)."""
    ids = [item.id for item in items]
    assert all(isinstance(item_id, str) for item_id in ids)
    return ids


def test_create_retrieve_update_delete(client: openai.OpenAI) -> None:
    created = client.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": "What is 6 times 7?"},
            {"type": "message", "role": "assistant", "content": "42."},
        ],
        metadata={"topic": "arithmetic"},
    )
    assert created.id.startswith("conv_")
    assert created.object == "conversation"
    assert created.created_at > 0
    assert created.metadata == {"topic": "arithmetic"}

    fetched = client.conversations.retrieve(created.id)
    assert (fetched.id, fetched.created_at, fetched.metadata) == (
        created.id,
        created.created_at,
        created.metadata,
    )
    items = list(client.conversations.items.list(created.id, order="asc"))
    assert [(item.role, _said(item)) for item in items] == [  # type: ignore[union-attr]
        ("user", "What is 6 times 7?"),
        ("assistant", "42."),
    ]
    assert [part.type for item in items for part in item.content] == ["input_text", "output_text"]  # type: ignore[union-attr]

    updated = client.conversations.update(created.id, metadata={"topic": "maths", "owner": "ada"})
    assert updated.metadata == {"topic": "maths", "owner": "ada"}
    assert client.conversations.retrieve(created.id).metadata == {"topic": "maths", "owner": "ada"}

    deleted = client.conversations.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "conversation.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(_ids(items)[0], conversation_id=created.id)


def test_items_create_list_retrieve_delete(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    assert conversation.metadata == {}
    added = client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "plot it"}]},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": "x"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "found x"},
        ],
    )
    assert added.object == "list" and added.has_more is False
    ids = _ids(added.data)
    assert ids[0].startswith("msg_") and ids[1].startswith("fc_") and len(set(ids)) == 3
    assert (added.first_id, added.last_id) == (ids[0], ids[-1])
    assert [item.type for item in added.data] == ["message", "function_call", "function_call_output"]

    newest_first = client.conversations.items.list(conversation.id)
    assert _ids(newest_first.data) == ids[::-1]
    assert newest_first.has_more is False

    call = client.conversations.items.retrieve(ids[1], conversation_id=conversation.id)
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.call_id) == ("lookup", '{"q": "x"}', "call_1")

    after_delete = client.conversations.items.delete(ids[1], conversation_id=conversation.id)
    assert (after_delete.id, after_delete.object) == (conversation.id, "conversation")
    remaining = client.conversations.items.list(conversation.id, order="asc")
    assert _ids(remaining.data) == [ids[0], ids[2]]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(ids[1], conversation_id=conversation.id)


def test_auto_pagination_yields_every_item_once_in_order(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"role": "user", "content": f"message {n}"} for n in range(5)]
    )
    more = client.conversations.items.create(
        conversation.id, items=[{"role": "user", "content": f"message {n}"} for n in range(5, 7)]
    )
    assert len(more.data) == 2

    first_page = client.conversations.items.list(conversation.id, limit=2, order="asc")
    assert len(first_page.data) == 2 and first_page.has_more is True
    assert first_page.last_id == first_page.data[-1].id

    oldest_first = [
        _said(item) for item in client.conversations.items.list(conversation.id, limit=2, order="asc")
    ]
    assert oldest_first == [f"message {n}" for n in range(7)]
    newest_first = [_said(item) for item in client.conversations.items.list(conversation.id, limit=2)]
    assert newest_first == [f"message {n}" for n in reversed(range(7))]


def test_code_interpreter_outputs_only_when_included(client: openai.OpenAI) -> None:
    call: dict[str, Any] = {
        "type": "code_interpreter_call",
        "id": "ci_conversationtest0001",
        "code": "print(6 * 7)",
        "container_id": "cntr_none",
        "outputs": [{"type": "logs", "logs": "42\n"}],
        "status": "completed",
    }
    conversation = client.conversations.create(items=[call])  # type: ignore[list-item]

    plain = client.conversations.items.retrieve(call["id"], conversation_id=conversation.id)
    assert plain.type == "code_interpreter_call"
    assert (plain.code, plain.container_id, plain.outputs) == ("print(6 * 7)", "cntr_none", None)

    included = client.conversations.items.retrieve(
        call["id"],
        conversation_id=conversation.id,
        include=["code_interpreter_call.outputs"],
    )
    assert [(o.type, o.logs) for o in included.outputs or []] == [("logs", "42\n")]  # type: ignore[union-attr]

    listed = client.conversations.items.list(conversation.id, include=["code_interpreter_call.outputs"])
    assert listed.data[0].outputs is not None  # type: ignore[union-attr]
    assert client.conversations.items.list(conversation.id).data[0].outputs is None  # type: ignore[union-attr]


def test_one_conversation_does_not_see_another(client: openai.OpenAI) -> None:
    mine = client.conversations.create(items=[{"role": "user", "content": "secret"}])
    theirs = client.conversations.create(items=[{"role": "user", "content": "other"}])
    my_item = _ids(client.conversations.items.list(mine.id).data)[0]
    assert [_said(i) for i in client.conversations.items.list(theirs.id)] == ["other"]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(my_item, conversation_id=theirs.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(my_item, conversation_id=theirs.id)
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.list(theirs.id, after=my_item)
    assert [_said(i) for i in client.conversations.items.list(mine.id)] == ["secret"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/conversations/conv_nope"),
        ("POST", "/conversations/conv_nope"),
        ("DELETE", "/conversations/conv_nope"),
        ("GET", "/conversations/conv_nope/items"),
        ("POST", "/conversations/conv_nope/items"),
        ("GET", "/conversations/conv_nope/items/msg_nope"),
        ("DELETE", "/conversations/conv_nope/items/msg_nope"),
    ],
)
def test_unknown_conversation_is_404_in_openai_shape(http: httpx.Client, method: str, path: str) -> None:
    body: dict[str, Any] = {"metadata": {}} if path == "/conversations/conv_nope" else {"items": []}
    response = http.request(method, path, json=body if method == "POST" else None)
    assert response.status_code == 404
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "No conversation found with id 'conv_nope'."


def test_unknown_item_is_404_naming_it(http: httpx.Client) -> None:
    conversation = http.post("/conversations", json={}).json()
    response = http.get(f"/conversations/{conversation['id']}/items/msg_nope")
    assert response.status_code == 404
    assert "msg_nope" in str(error_of(response)["message"])


def test_too_much_metadata_is_400(http: httpx.Client) -> None:
    metadata = {f"key{n}": "v" for n in range(17)}
    response = http.post("/conversations", json={"metadata": metadata})
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "metadata" and "16" in str(error["message"])

    conversation = http.post("/conversations", json={"metadata": {"a": "b"}}).json()
    long_value = http.post(f"/conversations/{conversation['id']}", json={"metadata": {"a": "x" * 513}})
    assert long_value.status_code == 400 and error_of(long_value)["param"] == "metadata"
    assert http.get(f"/conversations/{conversation['id']}").json()["metadata"] == {"a": "b"}


def test_unknown_item_type_is_400_and_stores_nothing(http: httpx.Client) -> None:
    items = [{"role": "user", "content": "fine"}, {"type": "teleport", "where": "mars"}]
    response = http.post("/conversations", json={"items": items})
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "items[1].type" and "teleport" in str(error["message"])

    conversation = http.post("/conversations", json={}).json()
    added = http.post(f"/conversations/{conversation['id']}/items", json={"items": items})
    assert added.status_code == 400 and error_of(added)["param"] == "items[1].type"
    assert http.get(f"/conversations/{conversation['id']}/items").json()["data"] == []


def test_more_than_twenty_items_duplicates_and_bad_include_are_400(http: httpx.Client) -> None:
    many = [{"role": "user", "content": str(n)} for n in range(21)]
    too_many = http.post("/conversations", json={"items": many})
    assert too_many.status_code == 400 and error_of(too_many)["param"] == "items"

    item = {"type": "message", "id": "msg_conversationtestdup1", "role": "user", "content": "once"}
    conversation = http.post("/conversations", json={"items": [item]}).json()
    again = http.post(f"/conversations/{conversation['id']}/items", json={"items": [item]})
    assert again.status_code == 400
    assert "Duplicate item found with id msg_conversationtestdup1" in str(error_of(again)["message"])
    elsewhere = http.post("/conversations", json={"items": [item]})
    assert elsewhere.status_code == 400

    bad_include = http.get(
        f"/conversations/{conversation['id']}/items", params={"include[]": "everything.please"}
    )
    assert bad_include.status_code == 400
    assert str(error_of(bad_include)["param"]).startswith("include[]")
    bad_limit = http.get(f"/conversations/{conversation['id']}/items", params={"limit": 101})
    assert bad_limit.status_code == 400 and error_of(bad_limit)["param"] == "limit"
    assert [i["id"] for i in http.get(f"/conversations/{conversation['id']}/items").json()["data"]] == [
        item["id"]
    ]
