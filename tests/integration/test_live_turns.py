"""Answers in progress on a real database: saved as they stream, cut cleanly when the worker stops.

The answerer here stalls after a few pieces, as Gemini does while it thinks: what a cut must not
wait for. Across processes and instances, see tests/e2e/test_stops.py.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from app.api.sse import sse_stream
from app.models import Message
from app.services.answering.base import Usage
from app.services.chat import ChatQuestion, ChatService
from app.services.live_turns import LiveTurns
from tests.conftest import parse_widget_stream


class StallingStream:
    """A few pieces, then silence until released (or closed)."""

    def __init__(self, pieces: list[str], released: threading.Event) -> None:
        self._pieces = iter(pieces)
        self._released = released
        self.usage = Usage()
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration:
            self._released.wait(30)
            raise

    def close(self) -> None:
        self.closed = True


class StallingAnswerer:
    name = "gemini:stalling"  # as a model: events name the answerer "gemini", as the schema allows
    writes_markdown = True  # as a model: its stream goes through the plain-text filter

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.released = threading.Event()
        self.streams: list[StallingStream] = []

    def answer(self, request):
        stream = StallingStream(self.pieces, self.released)
        self.streams.append(stream)
        return stream


PIECES = ["Basil ", "likes ", "water ", "in ", "the ", "morning"]


@pytest.fixture
def services(app):
    return app.extensions["services"]


def chat_service(services, answerer, live: LiveTurns) -> ChatService:
    return ChatService(services.store, services.retriever, answerer, live_turns=live)


def stored_answer(services, turn):
    """The assistant's row as stored (with its error code, which the API does not show)."""
    with services.store._session_factory() as session:
        return session.get(Message, turn.message_id)


def test_a_cut_ends_a_stalled_stream_at_once_and_stores_what_was_streamed(services):
    answerer = StallingAnswerer(PIECES)
    live = LiveTurns(services.store)
    turn = chat_service(services, answerer, live).start(ChatQuestion("How do I water basil?"))
    frames: list[str] = []
    ended = threading.Event()

    def read() -> None:
        for line in sse_stream(turn.events(), keepalive_seconds=0.2, interruption=turn.recorder):
            frames.append(line)
        ended.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while len([f for f in frames if '"token"' in f]) < len(PIECES) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored_answer(services, turn).status == "streaming"

        started = time.monotonic()
        assert live.cut() == 1
        assert ended.wait(2), "the stream waited for the answerer's next piece"
        assert time.monotonic() - started < 1
    finally:
        answerer.released.set()
        reader.join(10)
        live.stop()

    events = parse_widget_stream("".join(frames))
    assert [e["type"] for e in events[-3:]] == ["token", "error", "done"]
    assert events[-2]["code"] == "shutdown" and "cut short" in events[-3]["content"]
    assert events[-1]["message_id"] == str(turn.message_id)
    streamed = "".join(e["content"] for e in events[1:-3] if e["type"] == "token")
    assert streamed == "".join(PIECES)
    stored = stored_answer(services, turn)
    assert (stored.status, stored.content, stored.error_code) == ("interrupted", streamed, "shutdown")
    # The producer, released later, neither sends nor stores anything more.
    deadline = time.monotonic() + 5
    while not answerer.streams[0].closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stored_answer(services, turn).content == streamed


def test_a_cut_turn_read_as_json_ends_with_the_error(services):
    answerer = StallingAnswerer(PIECES)
    live = LiveTurns(services.store)
    turn = chat_service(services, answerer, live).start(ChatQuestion("How do I water basil?"))
    threading.Timer(0.3, live.cut).start()
    threading.Timer(0.6, answerer.released.set).start()  # JSON waits for the next piece (or the end)
    body = turn.collect()
    live.stop()
    assert body["answer"].startswith("".join(PIECES)) and "cut short" in body["answer"]
    assert body["error"]["code"] == "shutdown"
    assert stored_answer(services, turn).status == "interrupted"


def test_a_turn_that_ends_before_the_cut_is_complete(services):
    answerer = StallingAnswerer(PIECES)
    answerer.released.set()
    live = LiveTurns(services.store)
    turn = chat_service(services, answerer, live).start(ChatQuestion("How do I water basil?"))
    events = list(turn.events())
    assert live.cut() == 0
    live.stop()
    assert events[-1]["type"] == "done" and not any(e["type"] == "error" for e in events)
    assert stored_answer(services, turn).status == "complete"


def test_the_text_is_saved_while_it_streams(services):
    answerer = StallingAnswerer(PIECES)
    live = LiveTurns(services.store, checkpoint_seconds=0.2)
    turn = chat_service(services, answerer, live).start(ChatQuestion("How do I water basil?"))
    events = turn.events()
    try:
        received = [next(events) for _ in range(1 + len(PIECES))]  # metadata and every piece
        deadline = time.monotonic() + 5
        while stored_answer(services, turn).content != "".join(PIECES) and time.monotonic() < deadline:
            time.sleep(0.05)
        stored = stored_answer(services, turn)
        assert (stored.status, stored.content) == ("streaming", "".join(e["content"] for e in received[1:]))
        assert live.checkpoint_transactions >= 1
    finally:
        answerer.released.set()
        list(events)
        live.stop()
    assert stored_answer(services, turn).status == "complete"


def test_the_periodic_sweep_leaves_a_live_workers_answer_alone(services):
    answerer = StallingAnswerer(PIECES)
    live = LiveTurns(services.store, beat_seconds=0.1, sweep_seconds=0.1, stale_after=timedelta(seconds=1))
    turn = chat_service(services, answerer, live).start(ChatQuestion("How do I water basil?"))
    events = turn.events()
    try:
        next(events)
        time.sleep(1.5)  # several beats and sweeps, longer than the staleness
        assert stored_answer(services, turn).status == "streaming"
    finally:
        answerer.released.set()
        list(events)
        live.stop()
    assert stored_answer(services, turn).status == "complete"


def test_an_idle_worker_writes_nothing_and_beats_before_its_first_answer(services):
    from sqlalchemy import select

    from app.models import WorkerHeartbeat

    def heartbeats():
        with services.store._session_factory() as session:
            return session.scalars(select(WorkerHeartbeat.id)).all()

    live = LiveTurns(services.store, beat_seconds=0.05, sweep_seconds=0.05)
    live.start()
    worker = live._worker_id
    try:
        time.sleep(0.5)
        assert worker not in heartbeats()  # an idle service lets Neon's compute suspend
        answerer = StallingAnswerer(PIECES)
        answerer.released.set()
        turn = chat_service(services, answerer, live).start(ChatQuestion("How do I water basil?"))
        assert live.owner() == worker and worker in heartbeats()
        list(turn.events())
    finally:
        live.stop()
    assert worker not in heartbeats()  # a worker that stops cleanly removes its heartbeat
