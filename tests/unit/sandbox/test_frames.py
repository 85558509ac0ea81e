"""The frame format, without any process: round trips, malformed input, size caps."""

from __future__ import annotations

import struct

import pytest

from agentbox.sandbox.inside import frames


def test_round_trip_in_one_piece_and_byte_by_byte() -> None:
    objs = [
        {"op": "hello", "version": frames.PROTOCOL_VERSION, "pid": 7},
        {"op": "end", "id": 3, "output": "héllo \udcff \x00 \x1b[31m", "output_bytes": 12},
    ]
    stream = b"".join(frames.encode(o) for o in objs)
    assert stream.isascii() or stream[4:].isascii()

    whole = frames.Decoder()
    whole.feed(stream)
    assert [whole.next_frame(), whole.next_frame(), whole.next_frame()] == [*objs, None]

    trickle = frames.Decoder()
    got = []
    for i in range(len(stream)):
        trickle.feed(stream[i : i + 1])
        while (frame := trickle.next_frame()) is not None:
            got.append(frame)
    assert got == objs
    assert trickle.pending == 0


def test_payload_is_ascii_json_with_length_prefix() -> None:
    data = frames.encode({"op": "exec", "id": 1, "code": "print('é')"})
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert data[4:].isascii()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": 1}',
        b'{"op": 5}',
        '{"op": "é"}'.encode(),
        b'{"op": "x", "v": NaN}',
    ],
)
def test_malformed_payload_is_a_frame_error(payload: bytes) -> None:
    decoder = frames.Decoder()
    decoder.feed(struct.pack(">I", len(payload)) + payload)
    with pytest.raises(frames.FrameError):
        decoder.next_frame()


def test_zero_and_oversize_lengths_are_refused_before_reading_the_body() -> None:
    for length in (0, frames.MAX_FRAME + 1, 0xFFFFFFFF):
        decoder = frames.Decoder()
        decoder.feed(struct.pack(">I", length))
        with pytest.raises(frames.FrameError):
            decoder.next_frame()


def test_small_cap_applies_to_decoder() -> None:
    decoder = frames.Decoder(max_frame=16)
    decoder.feed(frames.encode({"op": "x", "pad": "y" * 32}))
    with pytest.raises(frames.FrameError):
        decoder.next_frame()


def test_encode_refuses_non_objects_and_oversize_and_nan() -> None:
    with pytest.raises(frames.FrameError):
        frames.encode([1])  # type: ignore[arg-type]
    with pytest.raises(frames.FrameError):
        frames.encode({"op": "x", "v": float("nan")})
    with pytest.raises(frames.FrameError):
        frames.encode({"op": "x", "blob": "a" * frames.MAX_FRAME})


def test_partial_frame_waits_for_more() -> None:
    data = frames.encode({"op": "ping", "id": 9})
    decoder = frames.Decoder()
    decoder.feed(data[:-1])
    assert decoder.next_frame() is None
    decoder.feed(data[-1:])
    assert decoder.next_frame() == {"op": "ping", "id": 9}
