"""Responses items: the client's input in its stored wire shape, and the chat the model reads from items.

Items are kept exactly as the API shows them (ids included), with code_interpreter_call outputs
always stored; `present` hides the outputs unless the client asked for them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from agentbox.engine import images, outputs, prompt
from agentbox.engine.loop import code_call_turn, tool_result
from agentbox.engine.responses import search_calls
from agentbox.errors import InvalidRequest
from agentbox.ids import new_id

Item = dict[str, Any]

OUTPUTS_INCLUDE = "code_interpreter_call.outputs"
# Every value the SDKs know (openai 1.109.1 to 3.57.0); only code_interpreter_call.outputs and
# file_search_call.results change what agentbox shows, the others name things it never stores.
# Anything else is a client mistake worth naming.
Includable = Literal[
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
    "file_search_call.results",
    "message.input_image.image_url",
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
    "web_search_call.action.sources",
    "web_search_call.results",
]
INCLUDABLE: tuple[str, ...] = get_args(Includable)
ROLES = ("user", "assistant", "system", "developer")
_ID_PREFIX = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "code_interpreter_call": "ci_",
    "file_search_call": "fs_",
    "reasoning": "rs_",
}
_TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
_CALLS = ("code_interpreter_call", "function_call", "file_search_call")


def as_items(raw: str | Sequence[Any], param: str = "input") -> list[Item]:
    """The client's input as stored items: a string is one user message; every item gets an id."""
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw}, param)]
    items: list[Item] = []
    for index, entry in enumerate(raw):
        where = f"{param}[{index}]"
        if not isinstance(entry, dict):
            raise InvalidRequest(f"Each item of '{param}' must be an object.", param=where)
        kind = entry.get("type") or ("message" if "role" in entry else None)
        if kind == "message":
            items.append(_message(entry, where))
        elif kind == "function_call_output":
            items.append(_function_call_output(entry, where))
        elif kind == "function_call":
            items.append(_function_call(entry, where))
        elif kind == "code_interpreter_call":
            items.append(_code_interpreter_call(entry, where))
        elif kind == "file_search_call":
            items.append(search_calls.input_item(entry, where))
        elif kind == "reasoning":
            items.append({**entry, "id": entry.get("id") or new_id("rs_")})
        elif kind == "item_reference":
            raise InvalidRequest(
                "Item references are not supported; send the item itself, or use previous_response_id "
                "or conversation to carry earlier items.",
                param=where,
            )
        else:
            raise InvalidRequest(f"Unsupported input item type {kind!r}.", param=f"{where}.type")
    return items


def _message(entry: dict[str, Any], where: str) -> Item:
    role = entry.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"A message's role must be one of {', '.join(ROLES)}.", param=f"{where}.role")
    content = entry.get("content")
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        parts: list[dict[str, Any]] = [{"type": text_type, "text": content}]
        if role == "assistant":
            parts[0]["annotations"] = []
    elif isinstance(content, list):
        parts = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    else:
        raise InvalidRequest(
            "A message's content must be a string or a list of parts.", param=f"{where}.content"
        )
    return {
        "type": "message",
        "id": entry.get("id") or new_id("msg_"),
        "status": entry.get("status") or "completed",
        "role": role,
        "content": parts,
    }


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequest("Each content part must be an object.", param=where)
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        text = part.get("text") if kind != "refusal" else part.get("refusal")
        if not isinstance(text, str):
            raise InvalidRequest(f"A {kind} part needs a string.", param=where)
        return dict(part)
    if kind == "input_image":
        if not part.get("image_url") and not part.get("file_id"):
            raise InvalidRequest("An input_image part needs an image_url or a file_id.", param=where)
        return dict(part)
    if kind == "input_file":
        if not part.get("file_id") and not part.get("file_data") and not part.get("file_url"):
            raise InvalidRequest("An input_file part needs a file_id or file_data.", param=where)
        if part.get("file_url"):
            raise InvalidRequest(
                "agentbox fetches nothing from the network: upload the file and send its file_id.",
                param=f"{where}.file_url",
            )
        return dict(part)
    raise InvalidRequest(f"Unsupported content part type {kind!r}.", param=f"{where}.type")


def _function_call_output(entry: dict[str, Any], where: str) -> Item:
    call_id, output = entry.get("call_id"), entry.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest("A function_call_output needs the call_id it answers.", param=f"{where}.call_id")
    if not isinstance(output, str):
        output = json.dumps(output)
    return {
        "type": "function_call_output",
        "id": entry.get("id") or new_id("fco_"),
        "call_id": call_id,
        "output": output,
        "status": entry.get("status") or "completed",
    }


def _function_call(entry: dict[str, Any], where: str) -> Item:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(entry.get(key), str):
            raise InvalidRequest(f"A function_call needs its {key}.", param=f"{where}.{key}")
    return {**entry, "id": entry.get("id") or new_id("fc_"), "status": entry.get("status") or "completed"}


def _code_interpreter_call(entry: dict[str, Any], where: str) -> Item:
    if not isinstance(entry.get("id"), str) or not entry["id"]:
        raise InvalidRequest("A code_interpreter_call item needs its id.", param=f"{where}.id")
    if not isinstance(entry.get("code") or "", str):
        raise InvalidRequest("A code_interpreter_call's code must be a string.", param=f"{where}.code")
    container = entry.get("container_id")
    if container is not None and not isinstance(container, str):
        raise InvalidRequest(
            "A code_interpreter_call's container_id must be a string.", param=f"{where}.container_id"
        )
    outputs = entry.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list)
        and all(
            isinstance(o, dict)
            and (
                (o.get("type") == "logs" and isinstance(o.get("logs"), str))
                or (o.get("type") == "image" and isinstance(o.get("url"), str))
            )
            for o in outputs
        )
    ):
        raise InvalidRequest(
            "A code_interpreter_call's outputs must be a list of logs and image outputs.",
            param=f"{where}.outputs",
        )
    return {**entry, "code": entry.get("code") or "", "status": entry.get("status") or "completed"}


def present(item: Item, include: Sequence[str]) -> Item:
    """The item as the client sees it: code_interpreter_call outputs and file_search_call results
    only when asked for."""
    if item.get("type") == "code_interpreter_call" and OUTPUTS_INCLUDE not in include:
        return {**item, "outputs": None}
    if item.get("type") == "file_search_call":
        return search_calls.present(item, include)
    return item


def last_container(items: Sequence[Item]) -> str | None:
    """The container of the newest code_interpreter_call in context (auto mode reuses it)."""
    for item in reversed(items):
        if item.get("type") == "code_interpreter_call" and item.get("container_id"):
            return str(item["container_id"])
    return None


def newest_user(items: Sequence[Item]) -> Item | None:
    """The newest user message: the one whose images are sent to the model."""
    return next((i for i in reversed(items) if i.get("type") == "message" and i.get("role") == "user"), None)


def image_file_ids(item: Item | None) -> list[str]:
    """The uploaded images (input_image parts with a file_id) of a message item."""
    parts = (item or {}).get("content") or []
    return [str(p["file_id"]) for p in parts if p.get("type") == "input_image" and p.get("file_id")]


def to_chat(
    items: Sequence[Item], system: str, image_urls: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The model's conversation: the system prompt, then each item in chat-completions form.

    Consecutive calls become one assistant message with several tool_calls; a code call's result
    follows it at once, a function's when its output item comes. Only the newest user message
    carries its images (`image_urls`: its uploads as data: URLs); older ones are named, so images
    are not re-sent on every turn. Calls that ended incomplete (malformed arguments, never run or
    handed to the client) are left out. Search calls come back with their passages under the
    markers they had, numbered in order (search_calls.chat_turn).
    """
    chat: list[dict[str, Any]] = [{"role": "system", "content": system}]
    newest = newest_user(items)
    searches = 0
    for item in items:
        kind = item.get("type")
        if kind in _CALLS and item.get("status") == "incomplete":
            continue
        if kind == "message":
            chat.append(_chat_message(item, (image_urls or {}) if item is newest else None))
        elif kind == "code_interpreter_call":
            turn = code_call_turn(item["id"], item.get("code") or "")
            _add_call(chat, turn["tool_calls"][0])
            chat.append(tool_result(item["id"], _logs(item)))
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            _add_call(chat, call)
        elif kind == "function_call_output":
            chat.append(tool_result(item["call_id"], item["output"]))
        elif kind == "file_search_call":
            call, text, _markers = search_calls.chat_turn(item, searches)
            searches += 1
            _add_call(chat, call)
            chat.append(tool_result(item["id"], text))
    return _answered(chat)


def _add_call(chat: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """A call joins the model turn just before it (its text or its other calls), else starts one."""
    last = chat[-1]
    if last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        chat.append({"role": "assistant", "content": "", "tool_calls": [call]})  # not null: see loop.py


def _answered(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat endpoints refuse a tool call without a result: a call never answered gets one that says so."""
    answered = {m["tool_call_id"] for m in chat if m["role"] == "tool"}
    fixed: list[dict[str, Any]] = []
    for message in chat:
        fixed.append(message)
        for call in message.get("tool_calls") or []:
            if call["id"] not in answered:
                fixed.append(tool_result(call["id"], "(no result was given for this call)"))
    return fixed


def _chat_message(item: Item, image_urls: Mapping[str, str] | None) -> dict[str, Any]:
    """A message item; `image_urls` None: its images are named, not sent."""
    role = "system" if item["role"] == "developer" else item["role"]
    parts: list[dict[str, Any]] = []
    for part in item.get("content") or []:
        kind = part.get("type")
        text: str | None = None
        if kind in ("input_text", "output_text", "text"):
            text = str(part.get("text", ""))
        elif kind == "refusal":
            text = str(part.get("refusal", ""))
        elif kind == "input_image":
            file_id, url = part.get("file_id"), part.get("image_url")
            url = url or (image_urls or {}).get(str(file_id))
            if image_urls is not None and url:
                parts.append(images.image_part(url, part.get("detail")))
            elif image_urls is not None:
                text = f"[image {file_id} was deleted]"
            else:
                text = f"[image {file_id or images.url_name(url)} shown earlier]"
        elif kind == "input_file":
            name = part.get("filename") or part.get("file_id")
            text = f"[file /mnt/data/{name}, available to the {prompt.CODE_TOOL_NAME} tool]"
        if text is not None:
            parts.append({"type": "text", "text": text})
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _logs(item: Item) -> str:
    pieces = []
    for output in item.get("outputs") or []:
        if output.get("type") == "logs":
            pieces.append(str(output.get("logs", "")))
        elif output.get("type") == "image":
            pieces.append("[an image was displayed to the user]")
    return outputs.clip("\n".join(pieces)) or "(the code ran without output)"


def snapshot(item: Item) -> Item:
    """A copy for an event or a stored object, so later changes to the live item don't leak into it."""
    return copy.deepcopy(item)
