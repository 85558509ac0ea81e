"""Text from every kind of file file_search reads, and a clear refusal for the rest."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from agentbox.retrieval.extract import SUPPORTED_EXTENSIONS, UnreadableFile, extract_text
from tests.documents import pdf_bytes, write_docx, write_pptx


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def refusal(filename: str, path: Path) -> UnreadableFile:
    with pytest.raises(UnreadableFile) as caught:
        extract_text(filename, path)
    return caught.value


def test_the_hosted_list_less_doc() -> None:
    assert {".pdf", ".docx", ".pptx", ".html", ".md", ".txt", ".py", ".json", ".tex"} <= SUPPORTED_EXTENSIONS
    assert ".doc" not in SUPPORTED_EXTENSIONS


def test_pdf_pages_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path, "blob", pdf_bytes([["The quokka (Setonix) lives", "on Rottnest Island."], ["Page two."]])
    )
    text = extract_text("Report.PDF", path)  # the uploaded name decides, in any case
    assert text == "The quokka (Setonix) lives\non Rottnest Island.\n\nPage two."


def test_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    path = write_docx(
        tmp_path / "f.docx", ["Quarterly figures", "Revenue rose."], [["Quarter", "Sales"], ["Q1", "1200"]]
    )
    assert extract_text("f.docx", path) == "Quarterly figures\nRevenue rose.\nQuarter | Sales\nQ1 | 1200"


def test_pptx_slides(tmp_path: Path) -> None:
    path = write_pptx(tmp_path / "f.pptx", [("Launch plan", "Ship in May"), ("Risks", "Supply delays")])
    assert extract_text("deck.pptx", path) == "Launch plan\nShip in May\n\nRisks\nSupply delays"


def test_html_keeps_blocks_drops_scripts(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Guide</title><style>p {color: red}</style></head><body>"
        "<script>var secret = 1;</script><h1>Setup</h1><p>Run <b>make</b>\n    install</p>"
        "<ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table></body></html>"
    )
    text = extract_text("page.html", write(tmp_path, "p", html))
    assert text == "Guide\n\nSetup\nRun make\ninstall\none\ntwo\na | b"
    assert "secret" not in text and "color" not in text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"line one\r\nline two\n\n\n\nend  ", "line one\nline two\n\nend"),
        ("\ufeffcafé ☕".encode(), "café ☕"),
        ("naïve".encode("utf-16"), "naïve"),
    ],
)
def test_plain_text_decoded_and_tidied(tmp_path: Path, data: bytes, expected: str) -> None:
    assert extract_text("notes.md", write(tmp_path, "n", data)) == expected


@pytest.mark.parametrize("name", ["report.doc", "sheet.xlsx", "archive.zip", "README", "image.png"])
def test_other_extensions_are_unsupported(tmp_path: Path, name: str) -> None:
    error = refusal(name, write(tmp_path, "x", "some text"))
    assert error.code == "unsupported_file"
    assert name in error.message and ".pdf" in error.message


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "could not be read as pdf"),
        ("random.pdf", bytes(range(256)) * 8, "could not be read as pdf"),
        ("broken.docx", b"PK\x03\x04 not a zip at all", "could not be read as docx"),
        ("broken.pptx", b"garbage", "could not be read as pptx"),
        ("binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(100), "binary"),
        ("latin1.py", "print('café')".encode("latin-1"), "not UTF-8"),
        ("empty.txt", b"", "no text"),
        ("blank.md", b"  \n\t\n", "no text"),
        ("empty.pdf", pdf_bytes([[]]), "no text"),
        ("scripts.html", b"<script>only()</script>", "no text"),
    ],
)
def test_damaged_or_empty_files_are_invalid(tmp_path: Path, name: str, data: bytes, says: str) -> None:
    error = refusal(name, write(tmp_path, "x", data))
    assert error.code == "invalid_file"
    assert name in error.message and says in error.message


def test_a_zip_that_is_not_a_document(tmp_path: Path) -> None:
    path = tmp_path / "x"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert refusal("fake.docx", path).code == "invalid_file"
