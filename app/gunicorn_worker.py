"""A gthread worker that reads each request whole before a thread serves it.

Why: gunicorn's gthread worker hands a new connection to a pool thread, which reads the request
line, headers and body with blocking reads and no overall deadline. A client that sends one byte
a second holds that thread for as long as it likes, so workers × threads slow clients stall the
whole service (health probes and every other reader wait for a thread).

How: this worker keeps gthread's thread pool (an answer still holds one thread for its whole
stream, which is what SSE needs) and its main loop, but the main loop, not a thread, reads the
request: a connection's socket stays non-blocking in the selector and every readable event hands
what arrived to the connection's reading state, which keeps its place between reads so reading a
request costs time linear in its size, however it is split into reads and chunks:
- the head: gunicorn's own parser runs over the buffer only when new bytes can change its
  verdict (the request line's or the head's end, a bare LF), so a few times per head;
- a `Content-Length` body: only the buffer's length is compared with the body's end;
- a chunked body: an incremental reader (app/http_framing.py) takes each read once, keeps the
  decoded body and drops the framing; a bare LF, a bad size or extension is refused at once (400),
  as is a chunk size, body or framing beyond MAX_CONTENT_LENGTH (413, Tuning.max_request_bytes).
  The thread's parser gets the head with the body as one chunk (and the trailers), so gunicorn's
  ChunkedReader, which copies what it holds once per chunk, reads it in one step.
A malformed request is answered at once with a JSON error. Only a whole request goes to a thread,
whose parser then reads from memory and never waits on the client. A request must be whole within
READ_DEADLINE_SECONDS of its first byte (of the connection, for a new one) or the client gets a
408 and is dropped; the loop wakes up for the first deadline. A `Content-Length` over the limit is
not buffered: the request goes on with its head and the app answers 413 from the headers.

gunicorn's own error pages (400 malformed request, 414 request line too long, 431 headers too
large, ...) come out in the API's JSON error shape with the security headers.

Alternatives measured side by side (bench/slow_clients.py, 1,000 slow clients for 60 s; numbers
in bench/README.md). This worker: health and chats answered in well under 1 s, each slow client
dropped after 10 s. Stock gthread (2 x 128) failed 11 of 12 probes; more threads (2 x 640) held in
one run and failed half the probes in the next (the kernel does not split connections evenly),
never dropping slow clients; gevent never drops a slow body, and the embedded index, SQLite and
the google-genai SDK would stall its one loop (see gunicorn.conf.py); a proxy in front is not
there on the Space (one process binds 0.0.0.0:$PORT) nor in every self-hosted deployment.

HTTP/1.x only, without TLS (the Space's proxy terminates TLS; gunicorn's HTTP/2 is off by default).
"""

from __future__ import annotations

import ctypes
import errno
import json
import resource
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.http import errors as herrors
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

from app.api.schemas import ErrorBody, wire
from app.http_framing import ChunkedBody, Verdict, head_may_be_decided, single_chunk
from app.http_refusals import TIMEOUT, TOO_LARGE, error_for

# A request (line, headers, body) must arrive whole this long after its first byte. Generous for
# a real reader on a poor link (a chat body is a few kB), short enough that a client trickling
# bytes holds nothing but a socket and a buffer for a few seconds.
READ_DEADLINE_SECONDS = 10.0
_RECV_BYTES = 64 * 1024
# A request head (line and headers) larger than this is refused with 431 before gunicorn's own,
# much larger limits (100 headers of 8 kB): it bounds the memory 1,000 slow clients can hold.
_MAX_HEAD_BYTES = 32 * 1024
# A chunked body may come with this many bytes of framing per byte of the body limit (a body of
# one-byte chunks `1;x\r\na\r\n` has 7); beyond, 413: framing, not memory, is what costs CPU.
_MAX_FRAMING_PER_BODY_BYTE = 8
# After a closing response: how long and how much of what a client still sends is read and dropped.
_LINGER_SECONDS = 2.0
_LINGER_MAX_BYTES = 64 * 1024
# glibc gives each thread that allocates under contention its own arena, up to 8 per core, and
# memory freed in one stays there: with 128 threads a worker kept 10-20 MB more at 200 streams
# than with 2 arenas, for the same CPU (bench/README.md, "CPU per answer"). Most allocations are
# Python's own small-object allocator under the GIL, so two arenas are not contended.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
# File descriptors a worker needs besides its connections (log files, the database pool, the
# index, pipes).
_SPARE_FDS = 256


class BufferingThreadWorker(ThreadWorker):
    """gthread, with requests read by the main loop (non-blocking, with a deadline) instead of by
    the pool threads."""

    accept_batch = 64  # connections accepted per pass of the main loop (see accept)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections whose request is arriving, and closed ones draining; insertion order is
        # deadline order in each.
        self.reading_conns: dict[TConn, None] = {}
        self.lingering_conns: dict[TConn, None] = {}
        self.max_body_bytes: int | None = None
        self.extra_headers: dict[str, str] = {}

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError("BufferingThreadWorker serves plain HTTP/1.x; terminate TLS in front of it")

    def init_process(self) -> None:
        self._raise_fd_limit()
        _limit_malloc_arenas(MALLOC_ARENAS)
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi
        config = getattr(app, "config", {})
        self.max_body_bytes = config.get("MAX_CONTENT_LENGTH")
        self.extra_headers = dict(getattr(app, "extensions", {}).get("security_headers", {}))

    def _raise_fd_limit(self) -> None:
        # Each connection, slow or not, is a file descriptor; the common soft limit of 1024 would
        # refuse connections long before worker_connections.
        wanted = self.cfg.worker_connections + self.cfg.threads + _SPARE_FDS
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError):
                target = soft
            if target < wanted:
                self.log.warning(
                    "open files limit is %s, below the %s this worker may need (worker_connections %s); "
                    "raise `ulimit -n`",
                    target,
                    wanted,
                    self.cfg.worker_connections,
                )

    # --- reading requests in the main loop ---------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        # Several at once: after a burst of connections (slow clients reconnecting together), one
        # accept per pass of the loop would leave a reader's connection queued behind all of them.
        for _ in range(self.accept_batch):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                client_sock, client_addr = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            self.nr_conns += 1
            conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
            conn.inbuf = bytearray()
            conn.requests = 0
            self.start_reading(conn)

    def enqueue_req(self, conn: TConn) -> None:
        # gthread calls this for a kept-alive connection that became readable, or that already
        # holds the start of its next request: read that request here first.
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.inbuf = bytearray(leftover)
        self.start_reading(conn)

    def start_reading(self, conn: TConn) -> None:
        """Watch the connection until its buffer holds a whole request (or the deadline passes)."""
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + READ_DEADLINE_SECONDS
        conn.sent_continue = False
        conn.truncated = False
        conn.head = None  # the request head, once parsed (gunicorn's Request)
        conn.body_end = None  # where a request with a Content-Length (or none) ends in the buffer
        conn.chunks = None  # the chunked body's reader, once the head says the body is chunked
        conn.line_ended = False  # the request line's CRLF has arrived
        self.reading_conns[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, conn))
        if conn.inbuf:
            self.check_request(conn, 0)

    def on_request_bytes(self, conn: TConn, _sock: socket.socket) -> None:
        """Take what the client sent; hand the request on once it is whole."""
        data = _receive(conn)
        if data is None:
            return
        if not data:  # the client went away (or reset) before finishing its request
            self.stop_reading(conn)
            self.drop(conn)
            return
        if conn.chunks is not None:
            self.check_chunked_body(conn, data)
            return
        scanned = len(conn.inbuf)
        conn.inbuf += data
        self.check_request(conn, scanned)

    def check_request(self, conn: TConn, scanned: int) -> None:
        """Go on with a request whose head or Content-Length body is arriving; the buffer holds
        new bytes from `scanned` on."""
        if conn.body_end is not None:  # a Content-Length body: only its length matters
            if len(conn.inbuf) >= conn.body_end:
                self.hand_on(conn)
            return
        try:
            head = self.read_head(conn, scanned)
        except Exception as exc:  # noqa: BLE001 - any parse error is the client's malformed request
            self.refuse(conn, error_for(exc), exc)
            return
        if head is None:
            if len(conn.inbuf) > _MAX_HEAD_BYTES:
                self.refuse(conn, error_for(herrors.LimitRequestHeaders("request head too large")))
            return
        head_length, request = head
        conn.head = request
        reader = request.body.reader
        limit = self.max_body_bytes
        if isinstance(reader, ChunkedReader):
            conn.chunks = ChunkedBody(
                limit,
                max_line_bytes=reader.limit_chunk_size_line,
                max_trailer_bytes=reader.limit_trailer_section,
                max_wire_bytes=None if limit is None else _MAX_FRAMING_PER_BODY_BYTE * limit,
            )
            body_start = bytes(conn.inbuf[head_length:])
            del conn.inbuf[head_length:]
            self.check_chunked_body(conn, body_start)
            return
        if isinstance(reader, LengthReader) and limit is not None and reader.length > limit:
            conn.truncated = True  # the app answers 413 from the headers; the body is never read
            conn.body_end = head_length
        else:
            conn.body_end = head_length + (reader.length if isinstance(reader, LengthReader) else 0)
        if len(conn.inbuf) >= conn.body_end:
            self.hand_on(conn)
        else:
            self.send_continue(conn)

    def read_head(self, conn: TConn, scanned: int) -> tuple[int, Any] | None:
        """The head's length and gunicorn's Request for it, or None while it is still arriving;
        raises what gunicorn's parser raises. It runs when the request line ends, then only when
        the new bytes may decide (not on every read): a head trickled byte by byte is parsed a
        few times, not once per byte."""
        if not conn.line_ended and conn.inbuf.find(b"\r\n", max(0, scanned - 1)) >= 0:
            conn.line_ended = True
        elif not head_may_be_decided(conn.inbuf, scanned, conn.line_ended, self.cfg.limit_request_line):
            return None
        data = bytes(conn.inbuf)
        parser = http.get_parser(self.cfg, [data], conn.client)
        parser.req_count = conn.requests
        try:
            request = next(parser)
        except herrors.NoMoreData:
            return None
        if request is None:
            return None
        return len(data) - len(parser.unreader.buf.getvalue()), request

    def check_chunked_body(self, conn: TConn, data: bytes) -> None:
        """Feed the chunked body's reader; hand the request on, with the body as one chunk, once
        it is whole."""
        chunks = conn.chunks
        verdict = chunks.feed(data)
        if verdict is Verdict.NEED_MORE:
            self.send_continue(conn)
            return
        if verdict is Verdict.TOO_LARGE:
            self.refuse(conn, TOO_LARGE, chunks.reason)
            return
        if verdict is not Verdict.WHOLE:  # 431 as gunicorn for trailers too large, or 400
            exc = (
                herrors.LimitRequestHeaders
                if verdict is Verdict.TRAILERS_TOO_LARGE
                else herrors.InvalidChunkSize
            )
            self.refuse(conn, error_for(exc(chunks.reason)), chunks.reason)
            return
        if chunks.trailers != b"\r\n":
            try:  # gunicorn's own checks of each trailer field, as its ChunkedReader makes them
                conn.head.parse_headers(chunks.trailers[:-4], from_trailer=True)
            except Exception as exc:  # noqa: BLE001 - any parse error is the client's bad trailer
                self.refuse(conn, error_for(exc), exc)
                return
        # The thread's parser reads this head and this one chunk: the same body, headers and
        # trailers for the app, in one step instead of one per chunk the client sent.
        conn.inbuf += single_chunk(chunks.body, chunks.trailers) + chunks.leftover
        self.hand_on(conn)

    def send_continue(self, conn: TConn) -> None:
        if conn.head._expected_100_continue and not conn.sent_continue:
            # The client waits for this before sending its body (gunicorn sends it from the thread).
            conn.sent_continue = True
            _send_nowait(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def hand_on(self, conn: TConn) -> None:
        """The request is whole: a pool thread serves it from the buffer."""
        self.stop_reading(conn)
        conn.head = conn.chunks = None
        conn.sock.setblocking(True)
        super().enqueue_req(conn)

    def refuse(self, conn: TConn, error: tuple[int, str, str, str], why: object = None) -> None:
        """Answer a request that will not be served with its JSON error, and close."""
        self.stop_reading(conn)
        self.answer_and_close(conn, error)
        if why is not None:
            self.log.warning("Invalid request from ip=%s: %s", _ip(conn.client), why)

    def stop_reading(self, conn: TConn) -> None:
        self.reading_conns.pop(conn, None)
        self.lingering_conns.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Wake up when the first read deadline passes, not up to a second later.
        if self.reading_conns:
            first = next(iter(self.reading_conns)).timeout
            timeout = max(0.0, min(timeout, first - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        # Both dicts are in deadline order (each deadline is now + a constant): stop at the first
        # one still running, so this costs nothing per pass of the loop with 1,000 connections.
        while self.reading_conns:
            conn = next(iter(self.reading_conns))
            if conn.timeout > now:
                break
            self.stop_reading(conn)
            if conn.inbuf:
                self.answer_and_close(conn, TIMEOUT)
            else:
                self.drop(conn)
        while self.lingering_conns:
            conn = next(iter(self.lingering_conns))
            if conn.timeout > now:
                break
            self.stop_reading(conn)
            self.drop(conn)

    def drop(self, conn: TConn) -> None:
        self.nr_conns -= 1
        conn.close()

    def answer_and_close(self, conn: TConn, error: tuple[int, str, str, str]) -> None:
        """Send a JSON error without waiting (a client that does not read it just loses it)."""
        _send_nowait(conn.sock, self.error_bytes(*error))
        self.drop(conn)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        try:
            keepalive = bool(fs.result()) if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 - gthread's own rule: a failed handler closes
            keepalive = False
        if keepalive:
            super().finish_request(conn, fs)
        else:
            self.close_lingering(conn)

    def close_lingering(self, conn: TConn) -> None:
        """Close after a response as gthread does (FIN, then drain what the client still sends so
        the kernel does not reset the response away), but in the selector: gthread's blocking
        drain in the main loop would let a client that never closes stall it for 2 s each."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            self.drop(conn)
            return
        conn.timeout = time.monotonic() + _LINGER_SECONDS
        conn.drained = 0
        self.lingering_conns[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_linger_bytes, conn))

    def on_linger_bytes(self, conn: TConn, _sock: socket.socket) -> None:
        data = _receive(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained >= _LINGER_MAX_BYTES:
            self.stop_reading(conn)
            self.drop(conn)

    # --- serving in a thread ----------------------------------------------------------------------

    def handle(self, conn: TConn) -> Any:
        """Serve the request buffered for this connection (runs in a pool thread)."""
        conn.sock.setblocking(True)
        conn.parser = http.get_parser(self.cfg, [bytes(conn.inbuf)], conn.client)
        conn.parser.req_count = conn.requests
        conn.inbuf = bytearray()
        conn.requests += 1
        conn.initialized = True
        req = None
        try:
            req = next(conn.parser)
            if conn.sent_continue or conn.truncated:
                req._expected_100_continue = False
            if conn.truncated:
                req.must_close = True  # the rest of an over-limit body is never read: no next request
            return self._keepalive_after(conn, self.handle_request(req, conn))
        except (herrors.NoMoreData, StopIteration) as exc:
            self.log.debug("Closing connection: %r", exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except Exception as exc:  # noqa: BLE001 - as gthread: answer and close
            self.handle_error(req, conn.sock, conn.client, exc)
        return False

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """gunicorn's error page, in the API's JSON shape with the security headers."""
        error = error_for(exc)
        if error[0] >= 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s", _ip(addr), exc)
        try:
            util.write_nonblock(client, self.error_bytes(*error))
        except Exception:  # noqa: BLE001 - the client is gone; nothing else to tell it
            self.log.debug("Failed to send error message.")

    def error_bytes(self, status: int, reason: str, code: str, message: str) -> bytes:
        """A whole HTTP/1.1 response carrying the API's error body; the connection then closes."""
        body = json.dumps(wire(ErrorBody, {"status": status, "error": code, "message": message})).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
            "Cache-Control": "no-store",
            **self.extra_headers,
        }
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        return "\r\n".join(lines).encode("latin-1") + body


def _send_nowait(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:
        pass


def _ip(addr: Any) -> str:
    return addr[0] if isinstance(addr, tuple) and addr else str(addr)


def _receive(conn: TConn) -> bytes | None:
    """What a ready socket holds: b"" when the client closed or reset it, None when nothing was
    there after all (a spurious wake-up)."""
    try:
        return conn.sock.recv(_RECV_BYTES)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _limit_malloc_arenas(arenas: int) -> None:
    # mallopt(M_ARENA_MAX): what MALLOC_ARENA_MAX sets at start, applied here because the workers
    # are forked, not started, and before any pool thread exists. glibc only; a no-op elsewhere.
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)  # the process's own symbols: libc's
    except (OSError, AttributeError):
        pass
