"""The file types the hosted code interpreter takes, and the 400 for any other attached to it.

OpenAI's "Supported files" table for Code Interpreter: a file of another type can be uploaded
(purpose=assistants takes anything) but not handed to the code interpreter. Refusing the same
files here keeps a client that works against agentbox working against the hosted service.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from agentbox.errors import InvalidRequest, NotFound
from agentbox.store.database import Store
from agentbox.store.records import FileRecord

CODE_INTERPRETER_EXTENSIONS = (
    ".c", ".cs", ".cpp", ".csv", ".doc", ".docx", ".html", ".java", ".json", ".md", ".pdf", ".php",
    ".pptx", ".py", ".rb", ".tex", ".txt", ".css", ".js", ".sh", ".ts", ".jpeg", ".jpg", ".gif",
    ".pkl", ".png", ".tar", ".xlsx", ".xml", ".zip",
)  # fmt: skip
_SUPPORTED = frozenset(CODE_INTERPRETER_EXTENSIONS)


def extension(filename: str) -> str:
    """The lower-cased extension with its dot ('.csv'); '' for a name without one."""
    return posixpath.splitext(filename)[1].lower()


def for_code_interpreter(attachment: Mapping[str, Any]) -> bool:
    """A message attachment the run places in /mnt/data: no tools named, or code_interpreter among them."""
    tools = attachment.get("tools") or []
    return not tools or any(t.get("type") == "code_interpreter" for t in tools)


def check_code_interpreter_file(record: FileRecord, param: str) -> None:
    """InvalidRequest naming the supported extensions when the code interpreter can't take the file."""
    found = extension(record.filename)
    if found in _SUPPORTED:
        return
    raise InvalidRequest(
        f"Files with extensions [{found or 'none'}] are not supported for code interpreter "
        f"(file '{record.id}', named '{record.filename}'). "
        f"Supported extensions: {', '.join(CODE_INTERPRETER_EXTENSIONS)}.",
        param=param,
        code="unsupported_file",
    )


async def check_code_interpreter_files(store: Store, file_ids: Iterable[str], param: str) -> None:
    """Each known file's type checked; an unknown id is left to be reported where it is used."""
    for file_id in file_ids:
        try:
            record = await store.get(FileRecord, file_id)
        except NotFound:
            continue
        check_code_interpreter_file(record, param)
