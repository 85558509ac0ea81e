"""What the model reads: images only in the newest user message, long outputs clipped, turns dropped
to fit the window without orphaning a tool result, malformed arguments named."""

from __future__ import annotations

from typing import Any

from agentbox.engine import arguments, context, images, outputs, prompt
from agentbox.engine.responses.items import to_chat
from agentbox.store.records import MessageRecord


def message(role: str, *parts: dict[str, Any]) -> MessageRecord:
    return MessageRecord(id="msg_1", created_at=0, thread_id="thread_1", role=role, content=list(parts))


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def image_file(file_id: str) -> dict[str, Any]:
    return {"type": "image_file", "image_file": {"file_id": file_id}}


def test_only_the_newest_user_message_carries_its_images() -> None:
    older = message("user", text("first"), image_file("file-a"))
    chart = message("assistant", image_file("file-chart"), text("a chart"))
    newest = message("user", text("second"), image_file("file-b"), image_file("file-gone"))
    chat = prompt.conversation(
        "Be exact.", None, [older, chart, newest], [], {"file-b": "data:image/png;base64,AA"}
    )
    assert chat[1]["content"] == "first\n[image file-a shown earlier]"
    assert chat[2]["content"] == "[image file-chart]\na chart"  # a figure the code made, not the user's
    assert chat[3]["content"] == [
        {"type": "text", "text": "second"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
        {"type": "text", "text": "[image file-gone was deleted]"},
    ]


def test_a_data_url_is_never_pasted_into_the_prompt_as_text() -> None:
    inline = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10_000}}
    chat = prompt.conversation("", None, [message("user", inline), message("user", text("next"))], [])
    assert chat[1]["content"] == "[image data:image/png;base64,… shown earlier]"


def test_responses_items_send_only_the_newest_images_and_skip_rejected_calls() -> None:
    items: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_image", "image_url": "https://a.test/1.png"}],
        },
        {
            "type": "function_call",
            "call_id": "call_bad",
            "name": "f",
            "arguments": "{",
            "status": "incomplete",
        },
        {
            "type": "function_call",
            "call_id": "call_ok",
            "name": "f",
            "arguments": "{}",
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_ok", "output": "done"},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_image", "file_id": "file-x", "detail": "low"}],
        },
    ]
    chat = to_chat(items, "system", {"file-x": "data:image/png;base64,BB"})
    assert chat[1]["content"] == "[image https://a.test/1.png shown earlier]"
    assert [c["id"] for c in chat[2]["tool_calls"]] == ["call_ok"]
    assert chat[-1]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,BB", "detail": "low"}}
    ]


def test_long_output_keeps_head_and_tail_with_the_true_size() -> None:
    assert outputs.clip("short") == "short"
    clipped = outputs.clip("h" * 10 + "m" * 100 + "t" * 5, head=10, tail=5)
    assert clipped == "h" * 10 + "\n[… 100 characters omitted of 115 …]\n" + "t" * 5


def turn(call_id: str, size: int) -> list[dict[str, Any]]:
    call = {"id": call_id, "type": "function", "function": {"name": "python", "arguments": "x" * size}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "y" * size},
    ]


def test_fit_drops_the_oldest_turns_and_keeps_a_call_with_its_result() -> None:
    chat = [
        {"role": "system", "content": "s" * 400},
        {"role": "user", "content": "old question " + "q" * 4000},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "new question"},
        *turn("call_1", 2000),
        *turn("call_2", 400),
    ]
    assert context.fit(chat, 10_000) is chat  # fits: untouched
    fitted = context.fit(chat, 700)
    # Dropped: the old exchange, then call_1 together with its result; kept: system, newest user, call_2.
    assert [m.get("tool_call_id") or m["role"] for m in fitted] == ["system", "user", "assistant", "call_2"]
    assert fitted[2]["tool_calls"][0]["id"] == "call_2"
    assert context.estimate(fitted) <= 700
    # Too small for even the pinned messages: they are sent as they are, the provider decides.
    assert [m["role"] for m in context.fit(chat, 10)] == ["system", "user"]


def test_estimates_count_images_flat_and_keep_room_for_the_answer() -> None:
    data_url = "data:image/png;base64," + "A" * 400_000
    chat = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}}]}]
    assert context.estimate(chat) == context.MESSAGE_TOKENS + context.IMAGE_TOKENS
    assert context.prompt_budget(128_000, 1_000) == 127_000
    assert context.prompt_budget(8_000, None) == 6_000  # a quarter of a small window for the answer
    assert context.prompt_budget(128_000, None) == 128_000 - context.DEFAULT_ANSWER_TOKENS


def test_function_arguments_must_be_a_json_object_with_the_required_fields() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    assert arguments.function_problem("w", '{"city": "Oslo"}', params) is None
    assert arguments.function_problem("ping", "", None) is None  # no parameters: empty is fine
    broken = arguments.function_problem("w", '{"city": ', params)
    assert broken is not None and broken.startswith("Error: the arguments of w were not valid JSON")
    assert "lack the required field(s) 'city'" in (arguments.function_problem("w", "{}", params) or "")
    assert "not a JSON object" in (arguments.function_problem("w", "[1]", params) or "")


def test_code_arguments_accept_json_and_raw_code_but_not_broken_json() -> None:
    assert arguments.code_problem('{"code": "print(1)"}') is None
    assert arguments.code_problem('{"code": "for i in x:\n    print(i)"}') is None  # raw newline inside
    assert arguments.code_problem("print({1: 2})") is None
    assert "not valid JSON" in (arguments.code_problem('{"code": "print(1)"') or "")
    assert "lack the string field 'code'" in (arguments.code_problem('{"source": "print(1)"}') or "")


def test_image_types_come_from_the_bytes() -> None:
    assert images.image_mime(b"\x89PNG\r\n\x1a\n....", "x.bin") == "image/png"
    assert images.image_mime(b"\xff\xd8\xff\xe0", "photo") == "image/jpeg"
    assert images.image_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a") == "image/webp"
    assert images.image_mime(b"col1,col2\n", "data.csv") is None
