"""A file's text, for file_search: PDF, Word, PowerPoint, HTML and the plain-text kinds OpenAI lists.

The extension decides the reader (as OpenAI's file_search does); a file whose extension is not on the
list is refused as `unsupported_file`, one that cannot be read or holds no text as `invalid_file`.
Extraction is blocking CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

# OpenAI's file_search list, less .doc (the old binary Word format, which nothing here reads).
DOCUMENT_EXTENSIONS = frozenset({".pdf", ".docx", ".pptx", ".html"})
TEXT_EXTENSIONS = frozenset(
    {".c", ".cpp", ".cs", ".css", ".go", ".java", ".js", ".json", ".md", ".php", ".py", ".rb", ".sh"}
    | {".tex", ".ts", ".txt"}
)
SUPPORTED_EXTENSIONS = DOCUMENT_EXTENSIONS | TEXT_EXTENSIONS

UnreadableCode = Literal["unsupported_file", "invalid_file"]


class UnreadableFile(Exception):
    """The file gives no text; `code` is OpenAI's last_error code and the message says why."""

    def __init__(self, message: str, code: UnreadableCode = "invalid_file") -> None:
        super().__init__(message)
        self.message = message
        self.code: UnreadableCode = code


def extension(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def is_supported(filename: str) -> bool:
    return extension(filename) in SUPPORTED_EXTENSIONS


def extract_text(filename: str, path: Path) -> str:
    """The text of the file stored at `path` and uploaded as `filename`, or UnreadableFile."""
    suffix = extension(filename)
    if suffix not in SUPPORTED_EXTENSIONS:
        shown = f"'{suffix}'" if suffix else "no extension"
        raise UnreadableFile(
            f"File '{filename}' has {shown}; file_search reads {', '.join(sorted(SUPPORTED_EXTENSIONS))}.",
            code="unsupported_file",
        )
    readers = {".pdf": _pdf, ".docx": _docx, ".pptx": _pptx, ".html": _html}
    reader = readers.get(suffix, _plain)
    try:
        text = reader(path)
    except UnreadableFile as error:  # a reader's own reason, said of this file
        raise UnreadableFile(f"File '{filename}' cannot be read: {error.message}", error.code) from None
    except Exception as error:  # the parsers raise many kinds for a damaged file
        raise UnreadableFile(
            f"File '{filename}' could not be read as {suffix[1:]}: {_reason(error)}"
        ) from error
    text = _tidy(text)
    if not text:
        raise UnreadableFile(f"File '{filename}' contains no text to search.")
    return text


def _reason(error: Exception) -> str:
    message = str(error).strip() or type(error).__name__
    return message if len(message) <= 200 else message[:200] + "…"


def _tidy(text: str) -> str:
    """Unix line ends, no trailing spaces, at most one blank line in a row, no NULs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _plain(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif b"\x00" in data[:8192]:
        raise UnreadableFile("it is binary, not text.")
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise UnreadableFile(f"it is not UTF-8 text (byte {error.start} cannot be decoded).") from error


def _pdf(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted and not reader.decrypt(""):
        raise UnreadableFile("the PDF is encrypted with a password.")
    return "\n\n".join(page.extract_text() or "" for page in reader.pages)


def _docx(path: Path) -> str:
    from docx import Document
    from docx.table import Table

    document = Document(str(path))
    parts: list[str] = []
    for block in document.iter_inner_content():  # paragraphs and tables in document order
        parts.append(_docx_table(block) if isinstance(block, Table) else block.text)
    return "\n".join(parts)


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:  # a merged cell is repeated for each grid column it spans
            text = cell.text.strip()
            if not cells or cells[-1] != text:
                cells.append(text)
        rows.append(" | ".join(cells))
    return "\n".join(rows)


def _pptx(path: Path) -> str:
    from pptx import Presentation

    slides = []
    for slide in Presentation(str(path)).slides:
        parts = _shapes_text(slide.shapes)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            parts.append(slide.notes_slide.notes_text_frame.text)
        slides.append("\n".join(p for p in parts if p.strip()))
    return "\n\n".join(slides)


def _shapes_text(shapes: Any) -> list[str]:
    parts: list[str] = []
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            parts.extend(_shapes_text(shape.shapes))
        elif getattr(shape, "has_text_frame", False):
            parts.append(shape.text_frame.text)
        elif getattr(shape, "has_table", False):
            parts.append("\n".join(" | ".join(c.text.strip() for c in row.cells) for row in shape.table.rows))
    return parts


_BLOCKS = (  # noqa: SIM905
    "address article aside blockquote br caption dd div dl dt figcaption figure footer form h1 h2 h3 "
    "h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot title tr ul"
).split()


def _html(path: Path) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head is not None:
        soup.head.decompose()
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" | ")
    text = soup.get_text()
    # One line per block (or per source line within one), runs of spaces and indentation squeezed.
    lines = (re.sub(r"[ \t\f\v]+", " ", line).strip(" |") for line in text.split("\n"))
    body = "\n".join(line for line in lines if line)
    return f"{title}\n\n{body}" if title and not body.startswith(title) else body
