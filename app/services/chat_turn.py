"""One answer in progress, as the widget's events: stream and shape, then store and cache, then report.

`ChatService.start` (app/services/chat.py) does the work before the first byte (store the
question, retrieve, await the first piece) and hands a `ChatTurn` to the HTTP layer, which
iterates `events()` once. Its three jobs, one method each:
- `_stream_events`: metadata, each shaped piece as a `token` (recorded before it is sent, so a
  checkpoint or a shutdown cut stores it), the end of the answer, `done`;
- `_store`: the assistant's turn stored with its status and the text that was streamed, however
  the stream ended; a complete, grounded answer kept in the answer cache;
- `_report`: one `TurnReport` to the observer (metrics, the chat log line).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from app.models import MessageStatus
from app.services.answer_cache import CACHE_ANSWERER
from app.services.answering.base import AnswerStream, AnswerUnavailable
from app.services.answering.shaping import MARKDOWN, TEXT, AnswerShaper
from app.services.conversations import OpenTurn, TurnOutcome
from app.services.errors import ErrorCode
from app.services.live_turns import LiveTurns, TurnRecorder
from app.services.observer import NULL_OBSERVER, Observer, TurnReport
from app.services.retrieval.retriever import Passage

log = logging.getLogger("app.services.chat")

INTERRUPTED_NOTE = {
    TEXT: "\n\n(The answer was cut short: {reason}. Please ask again.)",
    MARKDOWN: "\n\n_(The answer was cut short: {reason}. Please ask again.)_",
}
SHUTDOWN_MESSAGE = "The service is restarting."

# Keeps a complete, grounded answer in the answer cache: the shaped pieces and the passages cited.
Remember = Callable[[list[str], list[Passage]], None]


@dataclass(frozen=True)
class TurnContext:
    """What a turn answers and how: the stored turn, the reader's mode and format, the answerer
    and the passages it was given, and the timings so far."""

    turn: OpenTurn
    answerer_name: str
    passages: list[Passage]
    started: float  # time.perf_counter() when the question arrived
    retrieval_ms: int | None
    mode: str = "general"
    answer_format: str = TEXT
    selection: str | None = None  # the passage the reader selected (selection mode)
    cached: bool = False  # a replay from the answer cache
    original_answerer: str | None = None  # a replay: the answerer that wrote it
    strip_markdown: bool = False  # plain text asked of an answerer that writes Markdown
    fallback_from: str | None = None  # the answerer's error code when the fallback answered


class ChatTurn:
    """An answer in progress; iterate `events()` once to stream it (it stores itself at the end)."""

    def __init__(
        self,
        context: TurnContext,
        stream: AnswerStream,
        first_piece: str | None,
        *,
        live_turns: LiveTurns,
        observer: Observer | None = None,
        remember: Remember | None = None,
    ) -> None:
        self.context = context
        self.conversation_id = context.turn.conversation_id
        self.message_id = context.turn.assistant_message_id
        self.cached = context.cached
        self._stream = stream
        self._first_piece = first_piece
        self._observer = observer or NULL_OBSERVER
        self._remember = remember
        self._format = context.answer_format
        self._started = context.started
        self._shaper = AnswerShaper(context.passages, strip_markdown=context.strip_markdown)
        self._outcome = TurnOutcome(
            content="",
            status=MessageStatus.INTERRUPTED,
            error_code=context.fallback_from,
            # Grounded: the answer rests on text it was given (book passages or the selection).
            grounded=bool(context.passages) or bool(context.selection),
            answerer=context.answerer_name,
            retrieval_ms=context.retrieval_ms,
        )
        # Saves the text as it streams, and lets a stopping worker cut the turn (see sse_stream).
        self.recorder: TurnRecorder = live_turns.track(self.message_id, self._outcome, context.started)
        self.recorder.closing_events = self._shutdown_events

    @property
    def answerer(self) -> str:
        """Which answerer wrote the text: "gemini" or "offline" (a replay: the original one)."""
        return (self.context.original_answerer or self.context.answerer_name).split(":", 1)[0]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The passages the answer has cited so far, in the order of their [n]."""
        return self._shaper.sources

    def events(self) -> Generator[dict[str, Any], None, None]:
        """metadata → token… → done; stores the assistant turn however the stream ends.

        When the worker stops mid-answer, the turn is stored as interrupted and the stream ends
        with a note, an `error` event and `done` (here, or sent by `sse_stream` without waiting
        for the next piece).
        """
        outcome = self._outcome
        self._observer.stream_opened()
        try:
            yield from self._stream_events()
        except GeneratorExit:
            # The reader went away: stop the upstream answer and keep what was streamed.
            self._stream.close()
            if outcome.status is not MessageStatus.COMPLETE:
                outcome.status = MessageStatus.INTERRUPTED
                outcome.error_code = ErrorCode.CLIENT_DISCONNECTED
            raise
        except Exception:
            log.exception("chat turn %s failed while streaming", self.message_id)
            outcome.status = MessageStatus.FAILED
            outcome.error_code = ErrorCode.INTERNAL_ERROR
            raise
        finally:
            outcome.total_ms = ms_since(self._started)
            storing = time.perf_counter()
            self._store()
            self._report(store_ms=ms_since(storing))

    # --- streaming: shape each piece, record it, send it ----------------------------------------
    def _stream_events(self) -> Iterator[dict[str, Any]]:
        outcome = self._outcome
        yield {
            "type": "metadata",
            "conversation_id": str(self.conversation_id),
            "message_id": str(self.message_id),
        }
        first = [] if self._first_piece is None else [self._first_piece]
        failure: AnswerUnavailable | None = None
        try:
            for piece in itertools.chain(first, self._stream):
                text = self._shaper.feed(piece)
                if not text:
                    continue  # a marker or citation still undecided: it comes with the next piece
                if outcome.first_token_ms is None:
                    outcome.first_token_ms = ms_since(self._started)
                    self._observer.first_token(time.perf_counter() - self._started, self._source)
                if not self._record(text):  # cut: stored already, send nothing more
                    break
                yield {"type": "token", "content": text}
        except AnswerUnavailable as exc:
            failure = exc
        if not self.recorder.seal():
            self._stream.close()  # abandon the upstream answer
            yield from self.recorder.take_closing_events() or []
            return
        rest = self._shaper.finish()  # what the filter held back, undecided, until the end
        if rest:
            self._record(rest)
            yield {"type": "token", "content": rest}
        if failure is not None:
            # Tokens may already be on the reader's screen: finish the stream politely.
            note = INTERRUPTED_NOTE[self._format].format(reason=failure.message.rstrip("."))
            outcome.status = MessageStatus.FAILED
            outcome.error_code = failure.code
            # The note is not stored: the message's status says the answer was cut short.
            yield {"type": "token", "content": note}
            yield {"type": "error", "code": failure.code, "message": failure.message}
        else:
            outcome.status = MessageStatus.COMPLETE
        yield self._done_event()

    def _record(self, text: str) -> bool:
        """Keep a shaped piece before it is sent; False once the worker cut the turn."""
        if not self.recorder.append(text):
            return False
        if len(self._outcome.sources) != self._shaper.cited_count:
            # A new citation: a shutdown cut stores the sources cited so far (with `done`).
            self._outcome.sources = self.sources
        return True

    # --- storing and caching: once, however the stream ended ---------------------------------------
    def _store(self) -> None:
        """Store the assistant's turn with the text streamed; keep a complete answer in the cache."""
        outcome = self._outcome
        pieces = self.recorder.pieces
        outcome.content = "".join(pieces)
        outcome.sources = self.sources
        usage = getattr(self._stream, "usage", None)
        if usage is not None:
            outcome.prompt_tokens = usage.prompt_tokens
            outcome.completion_tokens = usage.completion_tokens
        # A failed write is retried in the background: the reader already has the answer,
        # and a delivered answer never turns into an error.
        if not self.recorder.finish(outcome):  # the shutdown cut stored it
            outcome.status = MessageStatus.INTERRUPTED
            outcome.error_code = ErrorCode.SHUTDOWN
        if (
            self._remember is not None
            and outcome.status is MessageStatus.COMPLETE
            and outcome.grounded
            and outcome.content
        ):
            self._remember(pieces, self._shaper.cited)

    # --- reporting ------------------------------------------------------------------------------
    def _report(self, *, store_ms: int) -> None:
        report = turn_report(
            self.context.turn, self.context.mode, self._outcome, self.cached, len(self.context.passages)
        )
        report.store_ms = store_ms
        self._observer.turn_finished(report, streamed=True)

    # --- events -----------------------------------------------------------------------------------
    def _done_event(self) -> dict[str, Any]:
        return {
            "type": "done",
            "sources": self._outcome.sources,
            "grounded": self._outcome.grounded,
            "conversation_id": str(self.conversation_id),
            "message_id": str(self.message_id),
            "cached": self.cached,
            "answerer": self.answerer,
            "format": self._format,
        }

    def _shutdown_events(self) -> list[dict[str, Any]]:
        # The widget shows tokens only: the note tells the reader; the error event tells clients.
        note = INTERRUPTED_NOTE[self._format].format(reason=SHUTDOWN_MESSAGE.rstrip(".").lower())
        return [
            {"type": "token", "content": note},
            {"type": "error", "code": ErrorCode.SHUTDOWN, "message": f"{SHUTDOWN_MESSAGE} Please ask again."},
            self._done_event(),
        ]

    @property
    def _source(self) -> str:
        # Metric label: "cache", "offline" or "gemini" (never the model name: bounded labels).
        return CACHE_ANSWERER if self.cached else self.context.answerer_name.split(":", 1)[0]

    def collect(self) -> dict[str, Any]:
        """Run the whole turn and return it as one JSON-ready object (for Accept: application/json)."""
        answer: list[str] = []
        sources: list[dict[str, Any]] = []
        grounded = False
        cached = False
        answerer = self.answerer
        error: dict[str, Any] | None = None
        for event in self.events():
            if event["type"] == "token":
                answer.append(event["content"])
            elif event["type"] == "error":
                error = {"code": event["code"], "message": event["message"]}
            elif event["type"] == "done":
                sources = event["sources"]
                grounded = event["grounded"]
                cached = event["cached"]
                answerer = event["answerer"]
        body: dict[str, Any] = {
            "conversation_id": str(self.conversation_id),
            "message_id": str(self.message_id),
            "answer": "".join(answer),
            "sources": sources,
            "grounded": grounded,
            "cached": cached,
            "answerer": answerer,
            "format": self._format,
        }
        if error:
            body["error"] = error
        return body


def turn_report(turn: OpenTurn, mode: str, outcome: TurnOutcome, cached: bool, passages: int) -> TurnReport:
    """How the turn went, for the observer."""
    return TurnReport(
        conversation_id=str(turn.conversation_id),
        message_id=str(turn.assistant_message_id),
        mode=mode,
        status=outcome.status.value,
        error_code=outcome.error_code,
        answerer=outcome.answerer or "",
        cached=cached,
        grounded=outcome.grounded,
        passages=passages,
        retrieval_ms=outcome.retrieval_ms,
        first_token_ms=outcome.first_token_ms,
        total_ms=outcome.total_ms,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
    )


def ms_since(started: float) -> int:
    """Whole milliseconds since a time.perf_counter() reading."""
    return int((time.perf_counter() - started) * 1000)
