"""The parts of gunicorn's gthread worker that app/gunicorn_worker.py builds on, pinned.

BufferingThreadWorker subclasses gthread's ThreadWorker and drives TConn and gunicorn's parser
from its main loop: none of that is gunicorn's public API, and only the end-to-end lane would
otherwise notice a change. Each check here names what the worker relies on, so that after a
gunicorn upgrade a failure says which assumption broke: re-read app/gunicorn_worker.py against
the new gunicorn/workers/gthread.py before changing the pin in requirements.txt.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
from importlib.metadata import version
from pathlib import Path

import pytest
from gunicorn import http, util
from gunicorn.config import Config
from gunicorn.http import errors as herrors
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

from app.gunicorn_worker import BufferingThreadWorker

ROOT = Path(__file__).resolve().parents[2]
ADDR = ("203.0.113.7", 40000)

# Method → the parameters the worker's override or call passes (self left out).
THREADWORKER_METHODS = {
    "init_process": [],
    "load_wsgi": [],
    "accept": ["listener"],  # overridden: accepts a batch, reads in the main loop
    "enqueue_req": ["conn"],  # gthread calls it for a connection ready again; the worker calls super's
    "wait_for_and_dispatch_events": ["timeout"],  # overridden: wakes for the first read deadline
    "murder_pending": [],  # overridden: also drops connections past their read deadline
    "finish_request": ["conn", "fs"],  # overridden: lingering close in the selector
    "handle": ["conn"],  # overridden: the thread parses the buffered request
    "handle_request": ["req", "conn"],
    "handle_error": ["req", "client", "addr", "exc"],  # overridden: the JSON error shape
    "_keepalive_after": ["conn", "keepalive"],
}


def _broke(what: str) -> str:
    return (
        f"gunicorn {version('gunicorn')} changed {what}, which app/gunicorn_worker.py relies on: "
        "re-read the worker against gunicorn/workers/gthread.py before upgrading"
    )


def test_the_pinned_gunicorn_is_the_one_installed():
    pinned = re.search(r"^gunicorn==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt must pin gunicorn exactly: the worker subclasses its internals"
    assert version("gunicorn") == pinned.group(1), _broke("version (not the one requirements.txt pins)")


@pytest.mark.parametrize("name", sorted(THREADWORKER_METHODS))
def test_threadworker_methods_keep_their_signatures(name):
    method = getattr(ThreadWorker, name, None)
    assert callable(method), _broke(f"ThreadWorker.{name} (gone)")
    parameters = list(inspect.signature(method).parameters)[1:]
    assert parameters == THREADWORKER_METHODS[name], _broke(f"ThreadWorker.{name}'s parameters: {parameters}")


def test_check_config_is_still_a_classmethod():
    assert isinstance(inspect.getattr_static(ThreadWorker, "check_config"), classmethod), _broke(
        "check_config"
    )


def test_the_main_loop_still_calls_the_hooks_the_worker_overrides():
    # The worker's read deadlines live in wait_for_and_dispatch_events and murder_pending; a loop
    # that stopped calling them would leave slow clients holding connections for ever.
    run = inspect.getsource(ThreadWorker.run)
    for call in ("self.wait_for_and_dispatch_events(", "self.murder_pending()", "self.notify()"):
        assert call in run, _broke(f"ThreadWorker.run (no longer calls {call}...)")
    # finish_request comes back to the main loop through the method queue, after the thread's handle.
    enqueue = inspect.getsource(ThreadWorker.enqueue_req)
    assert "self.handle" in enqueue and "self.finish_request" in enqueue, _broke("ThreadWorker.enqueue_req")
    finish = inspect.getsource(ThreadWorker.finish_request)
    assert "conn.parser.unreader.buf.getvalue()" in finish, _broke("finish_request's read-ahead check")


def test_worker_and_connection_attributes():
    worker = ThreadWorker(1, os.getpid(), [], None, 30, Config(), None)
    try:
        for name in ("nr_conns", "worker_connections", "poller", "cfg", "alive"):
            assert hasattr(worker, name), _broke(f"ThreadWorker.{name}")
    finally:
        worker.tmp.close()
    ours, theirs = socket.socketpair()
    try:
        conn = TConn(Config(), ours, ADDR, ("0.0.0.0", 7860))  # TConn(cfg, sock, client, server)
        for name in ("sock", "client", "parser", "timeout", "initialized"):
            assert hasattr(conn, name), _broke(f"TConn.{name}")
        assert conn.sock is ours and conn.client == ADDR and conn.parser is None, _broke(
            "TConn's constructor"
        )
        assert callable(conn.close), _broke("TConn.close")
        # The worker adds its own attributes (inbuf, head, chunks, ...): TConn must not use slots.
        conn.inbuf = bytearray()
    finally:
        ours.close()
        theirs.close()


def test_the_parser_parses_a_head_from_memory_and_keeps_the_rest_unread():
    head = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    data = head + b"abcGET / HTTP/1.1\r\n"
    parser = http.get_parser(Config(), [data], ADDR)  # get_parser(cfg, source, source_addr)
    parser.req_count = 0
    request = next(parser)
    # read_head measures the head as what the parser did not leave in its unreader.
    assert len(data) - len(parser.unreader.buf.getvalue()) == len(head), _broke(
        "the parser's unreader buffer"
    )
    assert isinstance(request.body.reader, LengthReader) and request.body.reader.length == 3, _broke(
        "LengthReader"
    )
    assert request._expected_100_continue is True and request.must_close is False, _broke("Request's flags")
    assert "deadline" in inspect.signature(parser.finish_body).parameters, _broke("Parser.finish_body")
    assert parser.unreader.take_buffered() == b"abcGET / HTTP/1.1\r\n", _broke("Unreader.take_buffered")
    assert parser.unreader.buf.getvalue() == b"", _broke("Unreader.take_buffered (it must empty the buffer)")


def test_a_chunked_head_and_its_trailers():
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    request = next(http.get_parser(Config(), [data], ADDR))
    reader = request.body.reader
    assert isinstance(reader, ChunkedReader), _broke("ChunkedReader")
    assert isinstance(reader.limit_chunk_size_line, int) and isinstance(reader.limit_trailer_section, int), (
        _broke("ChunkedReader's limits")
    )
    assert "from_trailer" in inspect.signature(request.parse_headers).parameters, _broke(
        "Request.parse_headers"
    )


def test_an_incomplete_head_raises_no_more_data():
    with pytest.raises(herrors.NoMoreData):
        next(http.get_parser(Config(), [b"GET / HTTP/1.1\r\nHost: x\r\n"], ADDR))


def test_the_errors_the_worker_maps_to_json_still_exist():
    names = [
        "LimitRequestLine",
        "LimitRequestHeaders",
        "UnsupportedTransferCoding",
        "ExpectationFailed",
        "ForbiddenProxyRequest",
        "ConfigurationProblem",
        "ParseException",
        "NoMoreData",
        "InvalidChunkSize",
    ]
    missing = [name for name in names if not isinstance(getattr(herrors, name, None), type)]
    assert missing == [], _broke(f"gunicorn.http.errors ({missing} gone)")
    assert callable(getattr(util, "write_nonblock", None)), _broke("util.write_nonblock")


def test_the_worker_still_subclasses_threadworker():
    assert issubclass(BufferingThreadWorker, ThreadWorker)
