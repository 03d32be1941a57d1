"""A chat turn from question to stored answer, as a stream of widget events.

Order of work, and why:
1. The reader's message is stored first, so it is never lost whatever happens next.
2. Retrieval runs and the answer's first piece is awaited *before* the HTTP response starts,
   so a failure there can still be an honest 429/503 instead of a broken stream.
3. Pieces are streamed as `token` events, shaped on the way (plain text for the widget, citations
   renumbered: see app/services/answering/shaping.py); `done` carries the sources the text cites.
   When Gemini fails before its first token, the extractive answerer answers instead (fallback).
4. Whatever ends the stream (completion, the reader leaving, an upstream error), the assistant's
   turn is stored with its status and the text that was streamed. Meanwhile the text is saved
   every few seconds, and a stopping worker cuts the turn cleanly (app/services/live_turns.py).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.models import MessageStatus
from app.services.answer_cache import CACHE_ANSWERER, AnswerCache, CacheKey, CachedAnswer
from app.services.answering.base import AnswerRequest, Answerer, AnswerStream, AnswerUnavailable
from app.services.answering.offline import OfflineAnswer, OfflineAnswerer
from app.services.answering.shaping import MARKDOWN, TEXT, AnswerShaper
from app.services.answering.rewriting import ConcatenatingRewriter, QueryRewriter
from app.services.conversations import ConversationStore, OpenTurn, TurnOutcome
from app.services.errors import ServiceUnavailable
from app.services.index.base import IndexNotReady
from app.services.live_turns import SHUTDOWN_CODE, LiveTurns, TurnRecorder
from app.services.observer import NULL_OBSERVER, Observer, TurnReport
from app.services.retrieval.retriever import Passage, Retriever

log = logging.getLogger(__name__)

INTERRUPTED_NOTE = {
    TEXT: "\n\n(The answer was cut short: {reason}. Please ask again.)",
    MARKDOWN: "\n\n_(The answer was cut short: {reason}. Please ask again.)_",
}
FALLBACK_NOTE = "Gemini is unavailable right now, so this answer quotes the book directly."
SHUTDOWN_MESSAGE = "The service is restarting."


@dataclass(frozen=True)
class ChatQuestion:
    """A validated request from the widget."""

    message: str
    mode: str = "general"
    context: str | None = None
    conversation_id: uuid.UUID | None = None
    format: str = TEXT  # "text" (plain prose, the widget's) or "markdown"


class ChatService:
    """Runs chat turns: store, retrieve, answer, stream, store."""

    def __init__(
        self,
        store: ConversationStore,
        retriever: Retriever,
        answerer: Answerer,
        rewriter: QueryRewriter | None = None,
        *,
        observer: Observer | None = None,
        answer_cache: AnswerCache | None = None,
        fallback: OfflineAnswerer | None = None,
        live_turns: LiveTurns | None = None,
    ) -> None:
        self.store = store
        self.live_turns = live_turns or LiveTurns(store)
        self.retriever = retriever
        self.answerer = answerer
        self.rewriter = rewriter or ConcatenatingRewriter()
        self.observer = observer or NULL_OBSERVER
        self.answer_cache = answer_cache
        # Answers when the answerer (Gemini) fails before its first token; None: fail with 429/503.
        self.fallback = fallback

    def start(self, question: ChatQuestion) -> ChatTurn:
        """Store the question and get the answer going.

        Raises `ConversationNotFound` (nothing stored) or `ServiceUnavailable` (the database is
        down, or the question is stored and the failed turn recorded) before any byte of the
        response is sent.
        """
        started = time.perf_counter()
        cache_key = self._cache_key(question)
        cached = self._cached_answer(cache_key)
        try:
            turn = self.store.open_turn(
                question.conversation_id, question.message, question.mode, question.context,
                worker_id=self.live_turns.owner(),
            )
        except SQLAlchemyError as exc:
            # Fail fast: an answer that cannot be kept is not worth streaming.
            log.warning("cannot store the question: %s", type(exc).__name__)
            raise ServiceUnavailable(
                "database_unavailable", "Conversations cannot be stored right now; please retry shortly.", retry_after=5
            ) from exc
        if cached is not None:
            return self._replay(turn, cached, started, question.mode, question.format)
        try:
            query, fallback = self._retrieval_queries(question, turn.history)
            retrieval = self.retriever.retrieve(query, alternatives=fallback)
            passages = retrieval.passages
            if question.mode == "selection" and question.context:
                # Cite where the selection comes from, with its neighbours as extra context.
                passages = _merge(self.retriever.locate(question.context), passages, self.retriever.top_k + 2)
        except IndexNotReady as exc:
            self._fail(turn, question.mode, started, "index_not_ready")
            raise ServiceUnavailable("index_not_ready", "The book's index is not built yet.") from exc
        except Exception as exc:  # Qdrant Cloud down, network, auth: the reader needs a 503, not a 500
            log.warning("retrieval failed: %s", type(exc).__name__)
            self._fail(turn, question.mode, started, "index_unavailable")
            raise ServiceUnavailable("index_unavailable", "The book's index is unavailable right now.", retry_after=5) from exc
        self.observer.retrieval_finished(retrieval.elapsed_ms / 1000)
        request = AnswerRequest(
            question=question.message,
            passages=passages,
            mode=question.mode,
            selection=question.context,
            history=turn.history,
            format=question.format,
        )
        answerer_name = self.answerer.name
        fallback_from: str | None = None
        try:
            stream = self.answerer.answer(request)
            first = next(stream, None)
        except AnswerUnavailable as exc:
            if self.fallback is None:
                self._fail(turn, question.mode, started, exc.code, retrieval_ms=retrieval.elapsed_ms)
                raise
            # The reader still gets the book's own words, with one sentence saying why.
            log.info("answerer unavailable (%s); answering with the extractive answerer", exc.code)
            fallback_from = exc.code
            answerer_name = self.fallback.name
            stream = OfflineAnswer(f"{FALLBACK_NOTE} {self.fallback.compose(request)}")
            first = None
        return ChatTurn(
            turn=turn,
            store=self.store,
            answerer_name=answerer_name,
            passages=passages,
            stream=stream,
            first_piece=first,
            started=started,
            retrieval_ms=retrieval.elapsed_ms,
            selection=question.context if question.mode == "selection" else None,
            mode=question.mode,
            observer=self.observer,
            # A fallback answer is never cached: the next reader should get Gemini's.
            remember=None if fallback_from else self._remember(cache_key, passages),
            answer_format=question.format,
            strip_markdown=question.format == TEXT and answerer_name != OfflineAnswerer.name,
            fallback_from=fallback_from,
            live_turns=self.live_turns,
        )

    # --- the answer cache (first-turn general questions; see app/services/answer_cache.py) ------
    def _cache_key(self, question: ChatQuestion) -> CacheKey | None:
        if self.answer_cache is None or question.mode != "general" or question.conversation_id is not None:
            return None
        try:
            version = self.retriever.index.version()
        except Exception as exc:  # noqa: BLE001 - no version, no cache; retrieval reports the outage
            log.debug("index version unavailable for the answer cache: %s", type(exc).__name__)
            return None
        return None if version is None else self.answer_cache.key(version, question.message, question.format)

    def _cached_answer(self, key: CacheKey | None) -> CachedAnswer | None:
        if key is None or self.answer_cache is None:
            return None
        cached = self.answer_cache.get(key)
        self.observer.answer_cache_lookup(cached is not None)
        return cached

    def _remember(self, key: CacheKey | None, passages: list[Passage]) -> Callable[[list[str], list[Passage]], None] | None:
        cache = self.answer_cache
        if key is None or cache is None:
            return None
        answerer = self.answerer.name
        # The shaped pieces and the passages they cite: a replay is exactly what was streamed.
        return lambda pieces, cited: cache.put(key, CachedAnswer(tuple(pieces), tuple(cited), answerer))

    def _replay(self, turn: OpenTurn, cached: CachedAnswer, started: float, mode: str, answer_format: str) -> ChatTurn:
        # No retrieval and no answerer: the stored turn and the stream are those of a normal
        # answer, with answerer "cache" and `cached: true` in `done`.
        return ChatTurn(
            turn=turn,
            store=self.store,
            answerer_name=CACHE_ANSWERER,
            passages=list(cached.passages),
            stream=cached.replay(),
            first_piece=None,
            started=started,
            retrieval_ms=None,
            mode=mode,
            observer=self.observer,
            cached=True,
            answer_format=answer_format,
            original_answerer=cached.answerer,
            live_turns=self.live_turns,
        )

    def _retrieval_queries(self, question: ChatQuestion, history: list[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
        """What to search for: a follow-up made standalone, and the fallback query (previous
        question + this one) to fuse with it, so a poor rewrite cannot sink the follow-up; each
        with the start of any selection."""
        query, fallback = question.message, None
        if history:
            fallback = ConcatenatingRewriter().rewrite(question.message, history)
            try:
                query = self.rewriter.rewrite(question.message, history)
            except ServiceUnavailable as exc:
                # The rewrite is a help, not a requirement: fall back rather than fail the turn.
                log.info("follow-up rewrite unavailable (%s); searching with the previous question", exc.code)
                query = fallback
        queries = [query] if fallback in (None, query) else [query, fallback]
        if question.mode == "selection" and question.context:
            queries = [f"{q}\n{question.context[:1000]}" for q in queries]
        return queries[0], tuple(queries[1:])

    def _fail(self, turn: OpenTurn, mode: str, started: float, code: str, retrieval_ms: int | None = None) -> None:
        outcome = TurnOutcome(
            content="",
            status=MessageStatus.FAILED,
            error_code=code,
            answerer=self.answerer.name,
            retrieval_ms=retrieval_ms,
            total_ms=_ms_since(started),
        )
        self.store.finish_turn(turn.assistant_message_id, outcome)
        self.observer.turn_finished(
            _report(turn.conversation_id, turn.assistant_message_id, mode, outcome, cached=False, passages=0),
            streamed=False,
        )


class ChatTurn:
    """An answer in progress; iterate `events()` once to stream it (it stores itself at the end)."""

    def __init__(
        self,
        *,
        turn: OpenTurn,
        store: ConversationStore,
        answerer_name: str,
        passages: list[Passage],
        stream: AnswerStream,
        first_piece: str | None,
        started: float,
        retrieval_ms: int | None,
        selection: str | None = None,
        mode: str = "general",
        observer: Observer | None = None,
        cached: bool = False,
        remember: Callable[[list[str], list[Passage]], None] | None = None,
        answer_format: str = TEXT,
        strip_markdown: bool = False,
        fallback_from: str | None = None,
        original_answerer: str | None = None,
        live_turns: LiveTurns | None = None,
    ) -> None:
        self.conversation_id = turn.conversation_id
        self.message_id = turn.assistant_message_id
        self._turn = turn
        self._store = store
        self._answerer_name = answerer_name
        self._passages = passages
        self._stream = stream
        self._first_piece = first_piece
        self._started = started
        self._retrieval_ms = retrieval_ms
        self._selection = selection
        self._mode = mode
        self._observer = observer or NULL_OBSERVER
        self.cached = cached
        self._remember = remember  # keeps a complete, grounded answer in the answer cache
        self._format = answer_format
        self._shaper = AnswerShaper(passages, strip_markdown=strip_markdown)
        self._original_answerer = original_answerer or answerer_name
        self._outcome = TurnOutcome(
            content="",
            status=MessageStatus.INTERRUPTED,
            error_code=fallback_from,  # the answerer's error code when the fallback answered
            # Grounded: the answer rests on text it was given (book passages or the selection).
            grounded=bool(passages) or bool(selection),
            answerer=answerer_name,
            retrieval_ms=retrieval_ms,
        )
        # Saves the text as it streams, and lets a stopping worker cut the turn (see sse_stream).
        self.recorder: TurnRecorder = (live_turns or LiveTurns(store)).track(self.message_id, self._outcome, started)
        self.recorder.closing_events = self._shutdown_events

    @property
    def answerer(self) -> str:
        """Which answerer wrote the text: "gemini" or "offline" (a replay: the original one)."""
        return self._original_answerer.split(":", 1)[0]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The passages the answer has cited so far, in the order of their [n]."""
        return self._shaper.sources

    def events(self) -> Iterator[dict[str, Any]]:
        """metadata → token… → done; stores the assistant turn however the stream ends.

        When the worker stops mid-answer, the turn is stored as interrupted and the stream ends
        with a note, an `error` event and `done` (here, or sent by `sse_stream` without waiting
        for the next piece).
        """
        recorder = self.recorder
        outcome = self._outcome
        self._observer.stream_opened()
        try:
            yield {"type": "metadata", "conversation_id": str(self.conversation_id), "message_id": str(self.message_id)}
            first = [] if self._first_piece is None else [self._first_piece]
            failure: AnswerUnavailable | None = None
            try:
                for piece in itertools.chain(first, self._stream):
                    text = self._shaper.feed(piece)
                    if not text:
                        continue  # a marker or citation still undecided: it comes with the next piece
                    if outcome.first_token_ms is None:
                        outcome.first_token_ms = _ms_since(self._started)
                        self._observer.first_token(time.perf_counter() - self._started, self._source)
                    if not self._record(text):  # cut: stored already, send nothing more
                        break
                    yield {"type": "token", "content": text}
            except AnswerUnavailable as exc:
                failure = exc
            if not recorder.seal():
                self._stream.close()  # abandon the upstream answer
                yield from recorder.take_closing_events() or []
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
        except GeneratorExit:
            # The reader went away: stop the upstream answer and keep what was streamed.
            self._stream.close()
            if outcome.status is not MessageStatus.COMPLETE:
                outcome.status = MessageStatus.INTERRUPTED
                outcome.error_code = "client_disconnected"
            raise
        except Exception:
            log.exception("chat turn %s failed while streaming", self.message_id)
            outcome.status = MessageStatus.FAILED
            outcome.error_code = "internal_error"
            raise
        finally:
            pieces = recorder.pieces
            outcome.content = "".join(pieces)
            outcome.sources = self.sources
            usage = getattr(self._stream, "usage", None)
            if usage is not None:
                outcome.prompt_tokens = usage.prompt_tokens
                outcome.completion_tokens = usage.completion_tokens
            outcome.total_ms = _ms_since(self._started)
            storing = time.perf_counter()
            # A failed write is retried in the background: the reader already has the answer,
            # and a delivered answer never turns into an error.
            if not recorder.finish(outcome):  # the shutdown cut stored it
                outcome.status = MessageStatus.INTERRUPTED
                outcome.error_code = SHUTDOWN_CODE
            if (
                self._remember is not None
                and outcome.status is MessageStatus.COMPLETE
                and outcome.grounded
                and outcome.content
            ):
                self._remember(pieces, self._shaper.cited)
            report = _report(self.conversation_id, self.message_id, self._mode, outcome, self.cached, len(self._passages))
            report.store_ms = _ms_since(storing)
            self._observer.turn_finished(report, streamed=True)

    def _record(self, text: str) -> bool:
        """Keep a shaped piece before it is sent; False once the worker cut the turn."""
        if not self.recorder.append(text):
            return False
        if len(self._outcome.sources) != self._shaper.cited_count:
            # A new citation: a checkpoint or a shutdown cut stores the sources cited so far.
            self._outcome.sources = self.sources
        return True

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
            {"type": "error", "code": SHUTDOWN_CODE, "message": f"{SHUTDOWN_MESSAGE} Please ask again."},
            self._done_event(),
        ]

    @property
    def _source(self) -> str:
        # Metric label: "cache", "offline" or "gemini" (never the model name: bounded labels).
        return CACHE_ANSWERER if self.cached else self._answerer_name.split(":", 1)[0]

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


def _merge(first: list[Passage], then: list[Passage], limit: int) -> list[Passage]:
    seen: set[tuple[str, str | None]] = set()
    merged: list[Passage] = []
    for passage in first + then:
        key = (passage.file, passage.anchor)
        if key not in seen:
            seen.add(key)
            merged.append(passage)
    return merged[:limit]


def _report(
    conversation_id: uuid.UUID, message_id: uuid.UUID, mode: str, outcome: TurnOutcome, cached: bool, passages: int
) -> TurnReport:
    return TurnReport(
        conversation_id=str(conversation_id),
        message_id=str(message_id),
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


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
