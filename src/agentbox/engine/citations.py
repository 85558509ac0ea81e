"""The passages a file_search call hands the model, and the citations of them in its answer.

Each passage goes to the model under a marker 【{call}:{index}†{filename}】, as OpenAI's hosted
tool does, and the model is asked to cite with it. The answer's markers are then found again:
Assistants keep them in the text under a file_citation annotation; Responses remove them and
annotate the position where each stood. A marker is matched by its numbers alone, so a model that
shortens or garbles the filename (【0:1†source】) still cites the right passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentbox.retrieval.results import SearchResult

__all__ = ["Citation", "Markers", "find", "format_results", "marker", "remove"]

Markers = dict[str, SearchResult]
"""Each marker of a run's search calls and the passage it stands for."""

_MARKER = re.compile(r"【(\d+):(\d+)†([^】\n]*)】")
_CITE_NOTE = (
    "Cite the passages you use by writing their marker (such as {example}) right after the statement "
    "they support. If the passages do not answer the question, say so rather than guess."
)
_NOTHING = "The search found nothing in the files for: {queries}."


@dataclass(frozen=True, slots=True)
class Citation:
    start: int
    end: int
    """The marker's place in the text: text[start:end] is the marker as the model wrote it."""
    marker: str
    result: SearchResult


def marker(call_no: int, index: int, filename: str) -> str:
    # A filename holding the marker's own closing bracket or a newline would break the marker.
    name = filename.replace("】", "]").replace("\n", " ")
    return f"【{call_no}:{index}†{name}】"


def format_results(
    call_no: int, results: list[SearchResult], queries: list[str] | None = None
) -> tuple[str, Markers]:
    """The tool result the model reads for one search call, and its markers."""
    if not results:
        return _NOTHING.format(queries="; ".join(queries or []) or "(no query)"), {}
    markers: Markers = {}
    blocks: list[str] = []
    for index, result in enumerate(results):
        key = marker(call_no, index, result.filename)
        markers[key] = result
        blocks.append(f"{key}\n{result.text.strip()}")
    note = _CITE_NOTE.format(example=next(iter(markers)))
    return note + "\n\n" + "\n\n".join(blocks), markers


def find(text: str, markers: Markers) -> list[Citation]:
    """The markers of `markers` cited in `text`, in order; markers it does not know are skipped."""
    by_numbers = {_numbers(key): result for key, result in markers.items()}
    cited: list[Citation] = []
    for match in _MARKER.finditer(text):
        result = by_numbers.get((int(match.group(1)), int(match.group(2))))
        if result is not None:
            cited.append(Citation(match.start(), match.end(), match.group(0), result))
    return cited


def remove(text: str, markers: Markers) -> tuple[str, list[tuple[int, Citation]]]:
    """The text without its known markers, and each citation with its index in that cleaned text
    (Responses' file_citation `index`). Unknown markers stay in the text."""
    cleaned: list[str] = []
    placed: list[tuple[int, Citation]] = []
    length = position = 0
    for citation in find(text, markers):
        piece = text[position : citation.start]
        cleaned.append(piece)
        length += len(piece)
        placed.append((length, citation))
        position = citation.end
    cleaned.append(text[position:])
    return "".join(cleaned), placed


def _numbers(key: str) -> tuple[int, int]:
    match = _MARKER.fullmatch(key)
    assert match is not None, key
    return int(match.group(1)), int(match.group(2))
