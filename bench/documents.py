"""The files the ingestion figures read: the same text as .txt, .pdf and .docx.

The PDF is written directly (pypdf reads PDFs but does not lay out text): Helvetica, one text
object per page, lines wrapped at 95 characters, 64 lines a page. The .docx is python-docx's, one
paragraph per paragraph of text.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import docx

LINE_CHARS = 95
PAGE_LINES = 64


def write(kind: str, paragraphs: list[str], path: Path) -> Path:
    """`paragraphs` written to `path` as kind ("txt", "pdf" or "docx")."""
    if kind == "txt":
        path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    elif kind == "pdf":
        path.write_bytes(pdf(paragraphs))
    elif kind == "docx":
        document = docx.Document()
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
        document.save(str(path))
    else:
        raise ValueError(f"no writer for {kind!r}")
    return path


def pdf(paragraphs: list[str]) -> bytes:
    lines: list[str] = []
    for paragraph in paragraphs:
        lines += [*textwrap.wrap(paragraph, LINE_CHARS), ""]
    pages = [lines[i : i + PAGE_LINES] for i in range(0, len(lines), PAGE_LINES)] or [[]]
    first_page = 4  # 1 catalog, 2 page tree, 3 font; then each page and its content stream
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, page in enumerate(pages):
        shown = b"".join(b"(" + _escaped(line) + b") Tj T* " for line in page)
        stream = b"BT /F1 9 Tf 12 TL 40 800 Td " + shown + b"ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {first_page + 2 * i + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _escaped(line: str) -> bytes:
    raw = line.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
