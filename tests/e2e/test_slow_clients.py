"""End to end: a real gunicorn with few threads, and clients that send their requests slowly or
wrongly. Slow clients must not take the threads other readers need; gunicorn's own errors come
out as the API's JSON with the security headers."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest
import requests

from app.tuning import Tuning
from tests.support.service import NO_LIMITS, Service, widget_chat

pytestmark = pytest.mark.e2e

WORKERS, THREADS = 2, 2
SLOW_CONNECTIONS = 6 * WORKERS * THREADS  # far more than the threads that could serve them


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(
        tmp_path_factory.mktemp("slow"),
        WEB_CONCURRENCY=str(WORKERS),
        GUNICORN_CMD_ARGS=f"--threads {THREADS}",
        RATE_LIMIT_CHAT="10000/minute",
        tuning=Tuning(**NO_LIMITS, max_request_bytes=4096),
    )
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def raw_response(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as is; the status, headers (lower-case names) and body of the answer."""
    with connect(port) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_slow_clients_hold_no_thread(service):
    """Many clients trickling headers or a body: health and a chat from another client still answer."""
    slow = []
    head_only = b"GET /api/health/live HTTP/1.1\r\nHost: slow\r\nX-Slow: "
    body_slow = (
        b"POST /api/chat HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
        b"Content-Length: 3000\r\n\r\n{"
    )
    try:
        for i in range(SLOW_CONNECTIONS):
            sock = connect(service.port)
            sock.sendall(head_only if i % 2 else body_slow)
            slow.append(sock)
        for _ in range(3):
            time.sleep(0.5)
            for sock in slow:
                sock.sendall(b"a")
        health = requests.get(f"{service.url}/api/health/live", timeout=10)
        assert health.status_code == 200
        events = widget_chat(service.url, {"message": "How do I run the service?"})
        assert [e["type"] for e in events][0] == "metadata" and events[-1]["type"] == "done"
    finally:
        for sock in slow:
            sock.close()


def test_a_client_that_never_finishes_its_request_is_answered_408_and_dropped(service):
    with connect(service.port) as sock:
        sock.sendall(b"GET /api/health/live HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        started = time.monotonic()
        received = b""
        sock.settimeout(60)
        while chunk := sock.recv(65536):
            received += chunk
    assert time.monotonic() - started < 45  # dropped by the service, not by this test's timeout
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"] == "request_timeout"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(40)),
            431,
        ),  # still arriving
        (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=[
        "414-request-line",
        "431-header",
        "431-a-long-head-still-arriving",
        "400-content-length",
        "400-malformed",
    ],
)
def test_gunicorns_own_errors_are_json_with_the_security_headers(service, request_bytes, status):
    got, headers, body = raw_response(service.port, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors" in headers["content-security-policy"]
    error = json.loads(body)
    assert error["status"] == status and error["error"] and error["message"]
    assert b"<html" not in body.lower()


def test_a_chunked_body_over_the_limit_is_413(service):
    payload = json.dumps({"message": "x" * 6000}).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 1000]), payload[i : i + 1000])
        for i in range(0, len(payload), 1000)
    )
    got, headers, body = raw_response(
        service.port,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: "
        b"chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert got == 413, body
    assert json.loads(body)["error"] == "payload_too_large"


def test_a_chunked_body_within_the_limit_is_served(service):
    payload = json.dumps({"message": "How do I run the service?"}).encode()
    got, headers, body = raw_response(
        service.port,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: "
        b"application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(payload), payload),
    )
    assert got == 200, body
    assert json.loads(body)["answer"]


def test_keep_alive_and_pipelined_requests_are_served_in_order(service):
    with requests.Session() as session:  # one kept-alive connection
        for _ in range(3):
            assert session.get(f"{service.url}/api/health/live", timeout=10).json() == {"status": "alive"}
    pipelined = (
        b"GET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with connect(service.port) as sock:
        sock.sendall(pipelined)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200", b"404"]


def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body(service):
    payload = json.dumps({"message": "How do I run the service?"}).encode()
    with connect(service.port) as sock:
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: "
            b"application/json\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(payload)
        )
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"100 Continue" not in received  # once is enough


CHUNKED_HEAD = (
    b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


def send_in_two(port: int, first: bytes, second: bytes, pause: float = 0.3) -> tuple[int, bytes]:
    """Two writes with a pause between, so the service reads them as two segments."""
    with connect(port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(first)
        time.sleep(pause)
        sock.sendall(second)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_valid_chunked_body_split_anywhere_is_served(service):
    # Issue 22: "5\r\nhello" then "\r\n0\r\n\r\n" was refused whenever a segment ended right
    # after a chunk's data or its CR. Every split point of the framing, end to end.
    payload = json.dumps({"message": "How do I run the service?"}).encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    framing = [k for k in range(1, len(body)) if not (3 < k < len(payload) + 2)]  # all but mid-data
    for k in framing:
        status, answer = send_in_two(service.port, CHUNKED_HEAD + body[:k], body[k:], pause=0.05)
        assert status == 200, (k, answer)


def test_a_bare_lf_in_chunk_framing_is_refused_at_once(service):
    started = time.monotonic()
    status, body = send_in_two(service.port, CHUNKED_HEAD + b"5\nhello", b"", pause=0)
    assert status == 400 and json.loads(body)["error"]
    assert time.monotonic() - started < 5  # not the 10 s read deadline


def test_a_chunk_size_past_the_body_limit_is_refused_at_once(service):
    started = time.monotonic()
    status, body = send_in_two(service.port, CHUNKED_HEAD + b"fffffff\r\n", b"", pause=0)
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    assert time.monotonic() - started < 5


def test_a_body_of_one_byte_chunks_costs_a_worker_little(service):
    # 65,000 chunks of one byte with an extension each: 520 kB of framing for a 65 kB body (past
    # this service's 4 kB limit). Before issue 22 the worker re-parsed its buffer on every read:
    # 14 s of CPU for one such request, while health probes waited.
    workers = [
        int(p) for p in open(f"/proc/{service.proc.pid}/task/{service.proc.pid}/children").read().split()
    ]
    cpu_before = sum(_cpu_seconds(pid) for pid in workers)
    with connect(service.port) as sock:
        sock.sendall(CHUNKED_HEAD)
        try:
            for _ in range(65):
                sock.sendall(b"1;x\r\na\r\n" * 1000)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end: what we want
        sock.settimeout(15)
        try:
            received = sock.recv(65536)
        except ConnectionResetError:
            received = b""
    assert requests.get(f"{service.url}/api/health/live", timeout=5).status_code == 200
    assert received.startswith((b"HTTP/1.1 413 ", b"HTTP/1.1 408 ")) or received == b"", received[:200]
    assert sum(_cpu_seconds(pid) for pid in workers) - cpu_before < 1.0


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
