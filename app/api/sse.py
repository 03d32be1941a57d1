"""Server-Sent Events framing, with keep-alive comments while an answer is slow to come.

Proxies (Hugging Face's among them) cut connections that stay silent too long. When the next
event takes longer than `keepalive_seconds`, a comment line (`: keep-alive`) goes out; the widget
keeps only `data: ` lines, so it never sees them.

The events are produced on a helper thread so the response can speak while the producer waits
on Gemini. When the reader goes away, the producer is told to stop and closes the event
generator itself (generators cannot be closed from another thread while they run), which stores
the turn as interrupted and abandons the upstream request.
"""

from __future__ import annotations

import contextvars
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import closing
from typing import Any

KEEPALIVE = ": keep-alive\n\n"
_END = object()


def frame(event: dict[str, Any]) -> str:
    """One event as the widget reads it: a `data: <json>` line and a blank line."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def sse_stream(events: Iterator[dict[str, Any]], keepalive_seconds: float) -> Iterator[str]:
    """Frame `events`, adding keep-alive comments during silences longer than `keepalive_seconds`."""
    if keepalive_seconds <= 0:
        with closing(events):  # type: ignore[arg-type]
            for event in events:
                yield frame(event)
        return

    channel: queue.Queue[Any] = queue.Queue(maxsize=64)
    reader_left = threading.Event()

    def produce() -> None:
        with closing(events):  # type: ignore[arg-type]  # closing here runs the turn's clean-up
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
    try:
        while True:
            try:
                item = channel.get(timeout=keepalive_seconds)
            except queue.Empty:
                yield KEEPALIVE
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
