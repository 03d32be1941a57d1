"""Server-Sent Events framing, with keep-alive comments while an answer is slow to come.

Proxies (Hugging Face's among them) cut connections that stay silent too long. When the next
event takes longer than `keepalive_seconds` (app/tuning.py), a comment line (`: keep-alive`) goes
out; the widget keeps only `data: ` lines, so it never sees them.

The events are produced on a helper thread so the response can speak while the producer waits
on Gemini. When the reader goes away, the producer is told to stop and closes the event
generator itself (generators cannot be closed from another thread while they run), which stores
the turn as interrupted and abandons the upstream request.

A stream can also be cut from outside (`Interruption`: the worker is stopping). The response then
ends at once with the events the producer had already handed over and the closing events,
without waiting for the producer, which may be blocked on Gemini's next piece.
"""

from __future__ import annotations

import contextvars
import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any, Protocol

from app.api.schemas import ChatEvent, wire

KEEPALIVE = ": keep-alive\n\n"
_END = object()
_WAKE = object()


class Interruption(Protocol):
    """A stream that may be cut from another thread (app.services.live_turns.TurnRecorder)."""

    def is_set(self) -> bool:
        """Whether the stream was cut."""
        ...

    def add_listener(self, wake: Callable[[], None]) -> None:
        """Call `wake` from the cutting thread when the stream is cut."""
        ...

    def take_closing_events(self) -> list[dict[str, Any]] | None:
        """The events that end a cut stream, to the first asker only (else None)."""
        ...


def frame(event: dict[str, Any]) -> str:
    """One event as the widget reads it: a `data: <json>` line and a blank line. Every event goes
    through its schema (app/api/schemas.py), the closing events of a cut stream included."""
    return f"data: {json.dumps(wire(ChatEvent, event), ensure_ascii=False)}\n\n"


def sse_stream(
    events: Generator[dict[str, Any], None, None],
    keepalive_seconds: float,
    interruption: Interruption | None = None,
) -> Iterator[str]:
    """Frame `events`, adding keep-alive comments during silences longer than `keepalive_seconds`
    (0: none), and ending at once when `interruption` is set."""
    if keepalive_seconds <= 0 and interruption is None:
        with closing(events):
            for event in events:
                yield frame(event)
        return

    channel: queue.Queue[Any] = queue.Queue(maxsize=64)
    reader_left = threading.Event()

    def produce() -> None:
        with closing(events):  # closing here runs the turn's clean-up
            try:
                for event in events:
                    if reader_left.is_set():
                        return
                    _put(channel, event, reader_left)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer to re-raise
                _put(channel, exc, reader_left)
                return
        _put(channel, _END, reader_left)

    # In the request's context, so the producer's log lines (the chat line) keep its request id.
    producer = threading.Thread(
        target=contextvars.copy_context().run, args=(produce,), name="sse-producer", daemon=True
    )
    producer.start()
    if interruption is not None:
        interruption.add_listener(lambda: _nudge(channel))
    try:
        while True:
            if interruption is not None and interruption.is_set():
                closing_events = interruption.take_closing_events()
                if closing_events is not None:
                    # The producer will send nothing more: hand over what it had queued (its
                    # pieces are in the stored text), then the closing events.
                    reader_left.set()
                    for queued in _drain(channel):
                        yield frame(queued)
                    for event in closing_events:
                        yield frame(event)
                    return
                # Otherwise the producer is sending them itself: go on until its end.
            try:
                item = channel.get(timeout=keepalive_seconds if keepalive_seconds > 0 else None)
            except queue.Empty:
                yield KEEPALIVE
                continue
            if item is _WAKE:
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield frame(item)
    finally:
        reader_left.set()


def _put(channel: queue.Queue[Any], item: Any, reader_left: threading.Event) -> None:
    # A bounded queue keeps a fast producer from buffering a whole answer for a stalled reader;
    # the timeout lets it notice a reader who left.
    while not reader_left.is_set():
        try:
            channel.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


def _nudge(channel: queue.Queue[Any]) -> None:
    # Wake a consumer waiting for the next event. A full channel needs no wake: the consumer
    # is not waiting, and checks the interruption before its next wait.
    try:
        channel.put_nowait(_WAKE)
    except queue.Full:
        pass


def _drain(channel: queue.Queue[Any]) -> Iterator[dict[str, Any]]:
    while True:
        try:
            item = channel.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, dict):
            yield item
