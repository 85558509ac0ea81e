"""Builds the model's conversation from the assistant, the thread's messages and its files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentbox.engine import images
from agentbox.store.records import MessageRecord

CODE_TOOL_NAME = "python"

CODE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": CODE_TOOL_NAME,
        "description": (
            "Run Python code in a stateful sandbox (like a Jupyter notebook): variables persist between"
            " calls of this conversation. The working directory is /mnt/data, where the user's files "
            "are and where files for the user must be saved. There is no internet access. stdout, "
            "stderr, the value of a last bare expression and any traceback come back as the result; "
            "matplotlib figures that are shown or left open are displayed to the user. pandas, numpy, "
            "matplotlib, seaborn, scipy, scikit-learn, openpyxl, python-docx, python-pptx, pypdf and "
            "Pillow are installed."
        ),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
        },
    },
}

SEARCH_TOOL_NAME = "file_search"

SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SEARCH_TOOL_NAME,
        "description": (
            "Search the files the user gave you (documents in vector stores) for passages relevant to "
            "the question. Use it whenever the answer may be in those files. Give one or more short, "
            "self-contained queries (keywords or a question; rephrase to cover synonyms). The result "
            "lists the passages found, each under a marker such as 【0:1†name】 to cite them with."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "queries": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The search queries, one to five.",
                }
            },
            "required": ["queries"],
        },
    },
}

_FILE_NOTE = (
    "To give the user a file you created, save it under /mnt/data and link it in your answer as "
    "[name](sandbox:/mnt/data/name)."
)


def system_prompt(instructions: str, additional: str | None, file_names: list[str]) -> str:
    parts = [instructions.strip()] if instructions.strip() else []
    if additional:
        parts.append(additional.strip())
    if file_names:
        listed = "\n".join(f"- /mnt/data/{name}" for name in file_names)
        parts.append(f"The user's files, available to the {CODE_TOOL_NAME} tool:\n{listed}")
    parts.append(_FILE_NOTE)
    return "\n\n".join(parts)


def message_text(message: MessageRecord) -> str:
    """The text the model sees for a stored message whose images are not sent: they are named."""
    pieces: list[str] = []
    for part in message.content:
        if part.get("type") == "text":
            pieces.append(str(part["text"]["value"]))
        elif part.get("type") == "image_file":
            pieces.append(f"[image {part['image_file']['file_id']}{_earlier(message)}]")
        elif part.get("type") == "image_url":
            pieces.append(f"[image {images.url_name(part['image_url']['url'])}{_earlier(message)}]")
    return "\n".join(pieces)


def _earlier(message: MessageRecord) -> str:
    # A user's image was sent with its own message; an assistant's is a figure the code made.
    return " shown earlier" if message.role == "user" else ""


def vision_content(message: MessageRecord, image_urls: Mapping[str, str]) -> str | list[dict[str, Any]]:
    """A user message with its images as image_url parts (uploads from `image_urls`, by file id);
    plain text when it has none. An upload missing from `image_urls` (deleted) is named instead."""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(part["text"]["value"])})
        elif kind == "image_file":
            file_id = part["image_file"]["file_id"]
            if file_id in image_urls:
                parts.append(images.image_part(image_urls[file_id], part["image_file"].get("detail")))
            else:
                parts.append({"type": "text", "text": f"[image {file_id} was deleted]"})
        elif kind == "image_url":
            parts.append(images.image_part(part["image_url"]["url"], part["image_url"].get("detail")))
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def newest_user(messages: Sequence[MessageRecord]) -> MessageRecord | None:
    return next((m for m in reversed(messages) if m.role == "user"), None)


def image_file_ids(message: MessageRecord | None) -> list[str]:
    if message is None:
        return []
    return [p["image_file"]["file_id"] for p in message.content if p.get("type") == "image_file"]


def conversation(
    instructions: str,
    additional_instructions: str | None,
    messages: list[MessageRecord],
    file_names: list[str],
    image_urls: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The chat for a run. Only the newest user message carries its images (`image_urls` holds its
    uploads as data: URLs); older ones are named, so images are not re-sent on every run."""
    chat: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(instructions, additional_instructions, file_names)}
    ]
    newest = newest_user(messages)
    for message in messages:
        if message is newest:
            chat.append({"role": message.role, "content": vision_content(message, image_urls or {})})
        else:
            chat.append({"role": message.role, "content": message_text(message)})
    return chat
