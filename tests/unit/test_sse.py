"""SSE framing: events as `data:` lines, keep-alive comments in silences, clean-up when the reader leaves."""

import json
import threading
import time

from app.api.sse import KEEPALIVE, sse_stream


def slow_events(log, pause=0.0, count=3):
    try:
        for i in range(count):
            if pause:
                time.sleep(pause)
            yield {"type": "token", "content": f"t{i}"}
        log.append("finished")
    except GeneratorExit:
        log.append("closed early")
        raise


def test_events_are_framed_as_the_widget_reads_them():
    lines = list(sse_stream(slow_events([]), keepalive_seconds=0))
    assert lines == [f"data: {json.dumps({'type': 'token', 'content': f't{i}'})}\n\n" for i in range(3)]


def test_silences_get_keep_alive_comments_the_widget_ignores():
    log = []
    lines = list(sse_stream(slow_events(log, pause=0.25, count=2), keepalive_seconds=0.1))
    assert KEEPALIVE in lines
    data = [line for line in "".join(lines).split("\n") if line.startswith("data: ")]
    assert [json.loads(d[6:])["content"] for d in data] == ["t0", "t1"]
    assert log == ["finished"]


def test_reader_leaving_closes_the_event_generator_on_its_own_thread():
    log = []
    stream = sse_stream(slow_events(log, pause=0.1, count=50), keepalive_seconds=0.05)
    for line in stream:
        if line.startswith("data: "):
            break
    stream.close()  # what gunicorn does when the reader disconnects
    deadline = time.monotonic() + 3
    while not log and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log == ["closed early"]
    while (
        any(t.name == "sse-producer" and t.is_alive() for t in threading.enumerate())
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert not [t for t in threading.enumerate() if t.name == "sse-producer" and t.is_alive()]


def test_an_error_in_the_events_reaches_the_response():
    def failing():
        yield {"type": "token", "content": "a"}
        raise RuntimeError("boom")

    stream = sse_stream(failing(), keepalive_seconds=1)
    assert next(stream).startswith("data: ")
    try:
        next(stream)
    except RuntimeError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("the error was swallowed")
