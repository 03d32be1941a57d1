"""The framing of a chunked request body (RFC 9112 section 7.1), read as its bytes arrive.

Why: the worker's main loop reads requests with non-blocking reads. Running gunicorn's
ChunkedReader over everything received so far after each read re-parses the body from its start
every time, and the reader itself copies what remains of its buffer once per chunk: a body of
65,000 one-byte chunks cost a worker 14 s of CPU. ChunkedBody keeps its place between reads, so
each byte is looked at a bounded number of times, whatever the chunking and however the reads
split it. It is pure (no sockets, no gunicorn objects) and says after each `feed` whether the body
needs more bytes, is whole (and where it ended), is malformed (400), too large (413) or has
trailers too large (431).

What it accepts is what gunicorn's ChunkedReader accepts from a whole buffer: hex sizes (leading
zeros allowed), chunk extensions by gunicorn's own grammar (`CHUNK_EXT_RE`, with blanks before
the `;`), CRLF after each chunk's data, then a trailer section (checked field by field by the
caller, with gunicorn's header rules). It is stricter where waiting could only end in an error:
a bare LF or CR in a size line or a trailer is refused at once (gunicorn waits for a CRLF that
would still leave the line invalid), and so is a size line longer than `max_line_bytes` even when
its CRLF has come (gunicorn refuses one only while it is still arriving). With `max_body_bytes`
set, a chunk size that would take the body past it is refused (413) as soon as its line ends, and
so is framing out of proportion to its body (`max_wire_bytes`).
"""

from __future__ import annotations

import enum
import re

from gunicorn.http.body import CHUNK_EXT_RE

# gunicorn's fallbacks for a chunk-size line and a trailer section (gunicorn.http.body).
DEFAULT_MAX_LINE_BYTES = 8190
DEFAULT_MAX_TRAILER_BYTES = 8190 * 32
# A size beyond this many significant hex digits is past any body limit (and any memory).
_MAX_SIZE_DIGITS = 16
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class Verdict(enum.Enum):
    """What the bytes fed so far make of the body; `status` is the HTTP answer to an error."""

    NEED_MORE = None
    WHOLE = 200
    MALFORMED = 400
    TOO_LARGE = 413
    TRAILERS_TOO_LARGE = 431

    @property
    def status(self) -> int | None:
        """The HTTP status that answers this verdict (None while more is needed, 200 when whole)."""
        return self.value


class _State(enum.Enum):
    SIZE_LINE = "size line"
    DATA = "chunk data"
    DATA_END = "CRLF after chunk data"
    TRAILERS = "trailer section"


class ChunkedBody:
    """An incremental reader of one chunked body: `feed` it the bytes after the request head as
    they arrive; once the verdict is WHOLE, `body` is the decoded body, `trailers` the raw trailer
    section (b"\\r\\n" when there is none) and `leftover` what followed the body (a pipelined
    request). Once the verdict is an error, `reason` says why."""

    def __init__(
        self,
        max_body_bytes: int | None = None,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_trailer_bytes: int = DEFAULT_MAX_TRAILER_BYTES,
        max_wire_bytes: int | None = None,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_line_bytes = max_line_bytes
        self.max_trailer_bytes = max_trailer_bytes
        self.max_wire_bytes = max_wire_bytes
        self.verdict = Verdict.NEED_MORE
        self.reason = ""
        self.body = bytearray()
        self.trailers = b""
        self.leftover = b""
        self.wire_bytes = 0  # bytes of framing and data fed so far
        self._state = _State.SIZE_LINE
        self._pending = bytearray()  # received, not consumed: part of a line, a CRLF or the trailers
        self._checked = 0  # how far into _pending the current line or section was already checked
        self._remaining = 0  # bytes of the current chunk's data still to come

    def feed(self, data: bytes) -> Verdict:
        """Take the next bytes of the body; the verdict so far (bytes after a verdict other than
        NEED_MORE are not read)."""
        if self.verdict is not Verdict.NEED_MORE:
            return self.verdict
        buf = self._pending
        buf += data
        pos = 0
        try:
            while pos < len(buf) and self.verdict is Verdict.NEED_MORE:
                if self._state is _State.DATA:
                    pos = self._read_data(buf, pos)
                elif self._state is _State.SIZE_LINE:
                    pos = self._read_size_line(buf, pos)
                elif self._state is _State.DATA_END:
                    pos = self._read_data_end(buf, pos)
                else:
                    pos = self._read_trailers(buf, pos)
                if pos < 0:  # the rest of the buffer is an unfinished line, CRLF or section
                    pos = -pos - 1
                    break
        except _Refused as refusal:
            self.verdict, self.reason = refusal.verdict, refusal.reason
            self._pending = bytearray()
            return self.verdict
        if self.verdict is Verdict.WHOLE:
            self.wire_bytes += pos - (len(buf) - len(data))
            self.leftover = bytes(buf[pos:])
            self._pending = bytearray()
            return self.verdict
        self.wire_bytes += len(data)
        del buf[:pos]
        self._checked = max(0, self._checked - pos)
        if self.max_wire_bytes is not None and self.wire_bytes > self.max_wire_bytes:
            self._refuse_now(Verdict.TOO_LARGE, f"chunk framing over {self.max_wire_bytes} bytes")
        return self.verdict

    # Each reader below starts at `pos` in `buf`; it returns where the next part starts, or
    # -(pos + 1) when what is left from `pos` is an unfinished part to complete with the next feed.

    def _read_size_line(self, buf: bytearray, pos: int) -> int:
        end = buf.find(b"\r\n", max(pos, self._checked - 1))
        if end < 0:
            # No CRLF yet: any LF in the line is bare, and so is a CR before its last byte.
            if buf.find(b"\n", max(pos, self._checked)) >= 0:
                raise _Refused(Verdict.MALFORMED, "bare LF in a chunk size line")
            if buf.find(b"\r", max(pos, self._checked - 1), len(buf) - 1) >= 0:
                raise _Refused(Verdict.MALFORMED, "bare CR in a chunk size line")
            if len(buf) - pos > self.max_line_bytes:
                raise _Refused(Verdict.MALFORMED, f"chunk size line over {self.max_line_bytes} bytes")
            self._checked = len(buf)
            return -pos - 1
        line = bytes(buf[pos:end])
        self._checked = 0
        if len(line) > self.max_line_bytes:
            raise _Refused(Verdict.MALFORMED, f"chunk size line over {self.max_line_bytes} bytes")
        if b"\n" in line or b"\r" in line:
            raise _Refused(Verdict.MALFORMED, "bare LF or CR in a chunk size line")
        size = self._chunk_size(line)
        if size == 0:
            self._state = _State.TRAILERS
        else:
            self._remaining = size
            self._state = _State.DATA
        return end + 2

    def _chunk_size(self, line: bytes) -> int:
        """The size a chunk size line gives, as gunicorn reads it (ChunkedReader.parse_chunk_size)."""
        digits, semicolon, extensions = line.partition(b";")
        if semicolon:
            digits = digits.rstrip(b" \t")  # RFC 9112 7.1.1: blanks before the extensions only
        if not _HEX.fullmatch(digits):
            raise _Refused(Verdict.MALFORMED, f"invalid chunk size {digits[:20]!r}")
        if semicolon and not CHUNK_EXT_RE.fullmatch(b";" + extensions):
            raise _Refused(Verdict.MALFORMED, "invalid chunk extension")
        limit = self.max_body_bytes
        if limit is not None and len(digits.lstrip(b"0")) > _MAX_SIZE_DIGITS:
            raise _Refused(Verdict.TOO_LARGE, "chunk size beyond any body limit")
        size = int(digits, 16)
        if limit is not None and len(self.body) + size > limit:
            raise _Refused(Verdict.TOO_LARGE, f"body over {limit} bytes")
        return size

    def _read_data(self, buf: bytearray, pos: int) -> int:
        take = min(self._remaining, len(buf) - pos)
        self.body += memoryview(buf)[pos : pos + take]
        self._remaining -= take
        if not self._remaining:
            self._state = _State.DATA_END
        return pos + take

    def _read_data_end(self, buf: bytearray, pos: int) -> int:
        if len(buf) - pos < 2:
            if buf[pos] != 0x0D:  # b"\r"
                raise _Refused(Verdict.MALFORMED, "chunk data not followed by CRLF")
            return -pos - 1
        if buf[pos : pos + 2] != b"\r\n":
            raise _Refused(Verdict.MALFORMED, "chunk data not followed by CRLF")
        self._state = _State.SIZE_LINE
        return pos + 2

    def _read_trailers(self, buf: bytearray, pos: int) -> int:
        # As gunicorn's parse_trailers: a CRLF at once ends the body; otherwise the section ends
        # at the first empty line.
        if buf[pos : pos + 2] == b"\r\n":
            return self._whole(buf, pos, pos + 2)
        checked = max(pos, self._checked)
        end = buf.find(b"\r\n\r\n", max(pos, checked - 3))
        stop = len(buf) if end < 0 else end + 4
        # Every LF from `checked` on must follow a CR, and every CR before the last byte (which
        # may be the start of a CRLF still arriving) must precede an LF.
        crlf_ending_here = buf.count(b"\r\n", max(pos, checked - 1), stop)
        if buf.count(b"\n", checked, stop) != crlf_ending_here:
            raise _Refused(Verdict.MALFORMED, "bare LF in the trailer section")
        cr_from = max(pos, checked - 1)
        cr_stop = stop if end >= 0 else stop - 1
        if buf.count(b"\r", cr_from, cr_stop) != buf.count(b"\r\n", cr_from, cr_stop + 1):
            raise _Refused(Verdict.MALFORMED, "bare CR in the trailer section")
        if end >= 0:
            return self._whole(buf, pos, stop)
        if len(buf) - pos > self.max_trailer_bytes:
            raise _Refused(Verdict.TRAILERS_TOO_LARGE, f"trailer section over {self.max_trailer_bytes} bytes")
        self._checked = len(buf)
        return -pos - 1

    def _whole(self, buf: bytearray, start: int, end: int) -> int:
        self.trailers = bytes(buf[start:end])
        self.verdict = Verdict.WHOLE
        return end

    def _refuse_now(self, verdict: Verdict, reason: str) -> None:
        self.verdict, self.reason = verdict, reason
        self._pending = bytearray()


class _Refused(Exception):
    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


def head_may_be_decided(buf: bytes | bytearray, scanned: int, line_ended: bool, max_line_bytes: int) -> bool:
    """Whether a request head still arriving, with new bytes from `scanned` on, may now parse
    whole or wrong: its end (an empty line) came, a bare LF did (refused at once by gunicorn), or
    a request line not ended yet is over `max_line_bytes` (414)."""
    return (
        buf.find(b"\r\n\r\n", max(0, scanned - 3)) >= 0
        or buf.count(b"\n", scanned) != buf.count(b"\r\n", max(0, scanned - 1))  # an LF without its CR
        or (not line_ended and 0 < max_line_bytes < len(buf) - 2)
    )


def single_chunk(body: bytes | bytearray, trailers: bytes = b"\r\n") -> bytes:
    """`body` framed as one chunk and the last chunk, then `trailers` (a raw trailer section):
    the same body and trailers for gunicorn's ChunkedReader, read in one step instead of one per
    chunk the client sent."""
    if not body:
        return b"0\r\n" + trailers
    return b"%x\r\n" % len(body) + bytes(body) + b"\r\n0\r\n" + trailers
