"""Builds the model's conversation from the assistant, the thread's messages and its files."""

from __future__ import annotations

from typing import Any

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
    """The text the model sees for a stored message (images are named, not sent)."""
    pieces: list[str] = []
    for part in message.content:
        if part.get("type") == "text":
            pieces.append(str(part["text"]["value"]))
        elif part.get("type") == "image_file":
            pieces.append(f"[image file {part['image_file']['file_id']}]")
        elif part.get("type") == "image_url":
            pieces.append(f"[image {part['image_url']['url']}]")
    return "\n".join(pieces)


def conversation(
    instructions: str,
    additional_instructions: str | None,
    messages: list[MessageRecord],
    file_names: list[str],
) -> list[dict[str, Any]]:
    chat: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(instructions, additional_instructions, file_names)}
    ]
    for message in messages:
        chat.append({"role": message.role, "content": message_text(message)})
    return chat
