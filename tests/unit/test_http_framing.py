"""The incremental chunked-body reader against gunicorn's own ChunkedReader: the same verdict and
the same body on random bodies, however the bytes are split across reads."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import ChunkMissingTerminator, NoMoreData
from gunicorn.http.unreader import IterUnreader

from app.http_framing import ChunkedBody, Verdict

VALID = b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\n"


class _Request:
    """What ChunkedReader asks of its request: limits, and a trailer parser (the worker checks
    trailers with gunicorn's own header parser; this one refuses what that one refuses for
    framing: a bare CR or LF, a line with no colon)."""

    limit_request_field_size = 0
    max_buffer_headers = 0
    trailers: list = []

    def parse_headers(self, data: bytes, from_trailer: bool = False) -> list:
        lines = data.split(b"\r\n")
        if any(b"\r" in line or b"\n" in line or b":" not in line for line in lines):
            raise ValueError("invalid trailer")
        return []


def gunicorn_reads(buffer: bytes) -> tuple[str, bytes]:
    """("whole", body) or ("error", b"") or ("more", b"") from gunicorn, given the whole buffer."""
    reader = ChunkedReader(_Request(), IterUnreader([buffer]))
    body = b""
    try:
        while True:
            piece = reader.read(65536)
            if not piece:
                return "whole", body
            body += piece
    except NoMoreData:
        return "more", b""
    except ChunkMissingTerminator as exc:
        # b"" or b"\r": the buffer ended within the CRLF that was due, which a socket waits for.
        return ("more" if exc.term in (b"", b"\r") else "error"), b""
    except Exception:  # noqa: BLE001 - any of gunicorn's parse errors is a refusal
        return "error", b""


def ours(pieces: list[bytes]) -> tuple[str, bytes, Verdict]:
    reader = ChunkedBody()
    verdict = Verdict.NEED_MORE
    for piece in pieces:
        verdict = reader.feed(piece)
    if verdict is Verdict.WHOLE:
        if reader.trailers != b"\r\n":  # as the worker does: the fields by gunicorn's rules
            try:
                _Request().parse_headers(reader.trailers[:-4], from_trailer=True)
            except ValueError:
                return "error", b"", Verdict.MALFORMED
        return "whole", bytes(reader.body), verdict
    if verdict is Verdict.NEED_MORE:
        return "more", b"", verdict
    return "error", b"", verdict


def split(buffer: bytes, rng: random.Random) -> list[bytes]:
    cuts = (
        sorted(rng.sample(range(1, len(buffer)), min(len(buffer) - 1, rng.randint(0, 6))))
        if len(buffer) > 1
        else []
    )
    bounds = [0, *cuts, len(buffer)]
    return [buffer[a:b] for a, b in pairwise(bounds)]


def random_body(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.randint(0, 5)):
        data = bytes(rng.choice(b"abc\r\n0;") for _ in range(rng.randint(1, 12)))
        size = rng.choice([f"{len(data):x}", f"{len(data):X}", f"00{len(data):x}"]).encode()
        extension = rng.choice([b"", b";x", b";a=b", b' ;q="v"', b";"])
        out += size + extension + b"\r\n" + data + b"\r\n"
    out += b"0" + rng.choice([b"", b";end"]) + b"\r\n" + rng.choice([b"", b"X-Trailer: v\r\n"]) + b"\r\n"
    return out


def corrupt(buffer: bytes, rng: random.Random) -> bytes:
    k = rng.randrange(len(buffer))
    how = rng.choice(["flip", "drop", "insert", "truncate"])
    if how == "flip":
        return buffer[:k] + bytes([rng.choice(b"\r\nzG; 9")]) + buffer[k + 1 :]
    if how == "drop":
        return buffer[:k] + buffer[k + 1 :]
    if how == "insert":
        return buffer[:k] + bytes([rng.choice(b"\r\nx ")]) + buffer[k:]
    return buffer[:k]


def test_every_split_of_a_valid_body_reads_whole():
    for cut in range(1, len(VALID)):
        for second in range(cut, len(VALID)):
            kind, body, _ = ours([VALID[:cut], VALID[cut:second], VALID[second:]])
            assert (kind, body) == ("whole", b"hello world"), (cut, second)


def test_what_follows_the_body_is_left_for_the_next_request():
    reader = ChunkedBody()
    assert reader.feed(VALID + b"GET / HTTP/1.1\r\n") is Verdict.WHOLE
    assert reader.leftover == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize("seed", range(4))
def test_random_valid_bodies_read_as_gunicorn_reads_them(seed):
    rng = random.Random(seed)
    for _ in range(500):
        buffer = random_body(rng)
        # Some generated extensions (a bare ";") are outside gunicorn's grammar: same verdict.
        assert ours(split(buffer, rng))[:2] == gunicorn_reads(buffer), buffer


@pytest.mark.parametrize("seed", range(4))
def test_random_broken_bodies_get_gunicorns_verdict_or_an_earlier_refusal(seed):
    rng = random.Random(100 + seed)
    for _ in range(500):
        buffer = corrupt(random_body(rng), rng)
        expected = gunicorn_reads(buffer)
        got = ours(split(buffer, rng))
        if expected[0] == "more" and got[0] == "error":
            # Refused at once where gunicorn would wait for bytes that cannot make it valid
            # (a bare LF or CR in a size line): only those refusals, never a valid body.
            assert got[2] is Verdict.MALFORMED, buffer
            continue
        assert got[:2] == expected, buffer


def test_a_bare_lf_is_refused_at_once():
    assert ChunkedBody().feed(b"5\nhello") is Verdict.MALFORMED


def test_a_chunk_size_past_the_limit_is_refused_at_once():
    assert ChunkedBody(max_body_bytes=1000).feed(b"3e9\r\n") is Verdict.TOO_LARGE
    assert ChunkedBody(max_body_bytes=10**12).feed(b"1" * 24 + b"\r\n") is Verdict.TOO_LARGE


def test_one_byte_chunks_are_read_in_linear_work():
    # 65,000 one-byte chunks with an extension each, fed a byte at a time: every byte is looked
    # at a bounded number of times (the buffer never grows past one line).
    wire = b"1;x\r\na\r\n" * 65_000 + b"0\r\n\r\n"
    reader = ChunkedBody()
    for k in range(0, len(wire), 7):
        reader.feed(wire[k : k + 7])
        assert len(reader._pending) < 16
    assert reader.verdict is Verdict.WHOLE and len(reader.body) == 65_000
