"""Citation markers taken out of a streaming answer, each remembered where it stood.

Responses show no markers: the model cites a passage by writing 【1:0†name】 (engine/citations.py),
and the answer's text loses it, the spaces before it too ("… is 42 【1:0†a】." reads "… is 42.")
while a file_citation annotation keeps its place. Deltas are cleaned as they stream, so what a
client accumulates from them is the final text: text that may still turn out to be (or to precede)
a marker is held back until it is known.
"""

from __future__ import annotations

from agentbox.engine import citations
from agentbox.engine.citations import Markers
from agentbox.retrieval.results import SearchResult

OPEN, CLOSE = "【", "】"
LONGEST = 300
"""A 【 not closed within this many characters is not a marker: it is let through."""


class MarkerFilter:
    def __init__(self, markers: Markers) -> None:
        self._markers = markers
        self._pending = ""
        self._length = 0
        self.cited: list[tuple[int, SearchResult]] = []
        """Each marker removed: its index in the cleaned text and the passage it named."""

    def feed(self, text: str) -> str:
        """The part of the answer so far that is final; the rest waits for the next piece."""
        self._pending += text
        out: list[str] = []
        while True:
            start = self._pending.find(OPEN)
            if start < 0:
                # Trailing spaces wait: a marker may follow them.
                self._let_through(out, len(self._pending.rstrip(" ")))
                break
            rest = self._pending[start:]
            end = rest.find(CLOSE)
            if end < 0 and len(rest) <= LONGEST and "\n" not in rest:
                self._let_through(out, len(self._pending[:start].rstrip(" ")))  # it may be a marker
                break
            candidate = rest[: end + 1] if end >= 0 else ""
            found = citations.find(candidate, self._markers) if candidate else []
            if found and found[0].start == 0 and found[0].end == len(candidate):
                self._let_through(out, len(self._pending[:start].rstrip(" ")))
                self.cited.append((self._length, found[0].result))
                self._pending = rest[len(candidate) :]
            else:
                self._let_through(out, start + len(OPEN))  # not a marker of this run: it stays
        return "".join(out)

    def flush(self) -> str:
        """The rest, at the answer's end: an unclosed 【 or trailing spaces stay as written."""
        out: list[str] = []
        self._let_through(out, len(self._pending))
        return "".join(out)

    def _let_through(self, out: list[str], count: int) -> None:
        """The first `count` pending characters go out; spaces cut before a marker are dropped
        by the caller moving past them."""
        piece, self._pending = self._pending[:count], self._pending[count:]
        out.append(piece)
        self._length += len(piece)
