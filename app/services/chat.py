"""A chat turn from question to stored answer, as a stream of widget events.

Order of work, and why:
1. The reader's message is stored first, so it is never lost whatever happens next.
2. Retrieval runs and the answer's first piece is awaited *before* the HTTP response starts,
   so a failure there can still be an honest 429/503 instead of a broken stream.
3. Pieces are streamed as `token` events; `done` carries the sources.
4. Whatever ends the stream (completion, the reader leaving, an upstream error), the assistant's
   turn is stored with its status and the text that was streamed.
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
from app.services.answering.rewriting import ConcatenatingRewriter, QueryRewriter
from app.services.conversations import ConversationStore, OpenTurn, TurnOutcome
from app.services.errors import ServiceUnavailable
from app.services.index.base import IndexNotReady
from app.services.observer import NULL_OBSERVER, Observer, TurnReport
from app.services.retrieval.retriever import Passage, Retriever

log = logging.getLogger(__name__)

INTERRUPTED_NOTE = "\n\n_(The answer was cut short: {reason}. Please ask again.)_"


@dataclass(frozen=True)
class ChatQuestion:
    """A validated request from the widget."""

    message: str
    mode: str = "general"
    context: str | None = None
    conversation_id: uuid.UUID | None = None


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
    ) -> None:
        self.store = store
        self.retriever = retriever
        self.answerer = answerer
        self.rewriter = rewriter or ConcatenatingRewriter()
        self.observer = observer or NULL_OBSERVER
        self.answer_cache = answer_cache

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
                question.conversation_id, question.message, question.mode, question.context
            )
        except SQLAlchemyError as exc:
            # Fail fast: an answer that cannot be kept is not worth streaming.
            log.warning("cannot store the question: %s", type(exc).__name__)
            raise ServiceUnavailable(
                "database_unavailable", "Conversations cannot be stored right now; please retry shortly.", retry_after=5
            ) from exc
        if cached is not None:
            return self._replay(turn, cached, started, question.mode)
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
        )
        try:
            stream = self.answerer.answer(request)
            first = next(stream, None)
        except AnswerUnavailable as exc:
            self._fail(turn, question.mode, started, exc.code, retrieval_ms=retrieval.elapsed_ms)
            raise
        return ChatTurn(
            turn=turn,
            store=self.store,
            answerer_name=self.answerer.name,
            passages=passages,
            stream=stream,
            first_piece=first,
            started=started,
            retrieval_ms=retrieval.elapsed_ms,
            selection=question.context if question.mode == "selection" else None,
            mode=question.mode,
            observer=self.observer,
            remember=self._remember(cache_key, passages),
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
        return None if version is None else self.answer_cache.key(version, question.message)

    def _cached_answer(self, key: CacheKey | None) -> CachedAnswer | None:
        if key is None or self.answer_cache is None:
            return None
        cached = self.answer_cache.get(key)
        self.observer.answer_cache_lookup(cached is not None)
        return cached

    def _remember(self, key: CacheKey | None, passages: list[Passage]) -> Callable[[list[str]], None] | None:
        cache = self.answer_cache
        if key is None or cache is None:
            return None
        answerer = self.answerer.name
        return lambda pieces: cache.put(key, CachedAnswer(tuple(pieces), tuple(passages), answerer))

    def _replay(self, turn: OpenTurn, cached: CachedAnswer, started: float, mode: str) -> ChatTurn:
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
        remember: Callable[[list[str]], None] | None = None,
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

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The passages the answer was given, as the widget's `sources`."""
        return [passage.source() for passage in self._passages]

    def events(self) -> Iterator[dict[str, Any]]:
        """metadata → token… → done; stores the assistant turn however the stream ends."""
        pieces: list[str] = []
        outcome = TurnOutcome(
            content="",
            status=MessageStatus.INTERRUPTED,
            sources=self.sources,
            # Grounded: the answer rests on text it was given (book passages or the selection).
            grounded=bool(self._passages) or bool(self._selection),
            answerer=self._answerer_name,
            retrieval_ms=self._retrieval_ms,
        )
        self._observer.stream_opened()
        try:
            yield {"type": "metadata", "conversation_id": str(self.conversation_id), "message_id": str(self.message_id)}
            first = [] if self._first_piece is None else [self._first_piece]
            try:
                for piece in itertools.chain(first, self._stream):
                    if outcome.first_token_ms is None:
                        outcome.first_token_ms = _ms_since(self._started)
                        self._observer.first_token(time.perf_counter() - self._started, self._source)
                    pieces.append(piece)
                    yield {"type": "token", "content": piece}
            except AnswerUnavailable as exc:
                # Tokens may already be on the reader's screen: finish the stream politely.
                note = INTERRUPTED_NOTE.format(reason=exc.message.rstrip("."))
                outcome.status = MessageStatus.FAILED
                outcome.error_code = exc.code
                yield {"type": "token", "content": note}
                yield {"type": "error", "code": exc.code, "message": exc.message}
            else:
                outcome.status = MessageStatus.COMPLETE
            yield {
                "type": "done",
                "sources": outcome.sources,
                "grounded": outcome.grounded,
                "conversation_id": str(self.conversation_id),
                "message_id": str(self.message_id),
                "cached": self.cached,
            }
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
            outcome.content = "".join(pieces)
            usage = getattr(self._stream, "usage", None)
            if usage is not None:
                outcome.prompt_tokens = usage.prompt_tokens
                outcome.completion_tokens = usage.completion_tokens
            outcome.total_ms = _ms_since(self._started)
            storing = time.perf_counter()
            try:
                self._store.finish_turn(self.message_id, outcome)
            except SQLAlchemyError as exc:
                # The reader already has the answer; the row stays "streaming" and the next
                # start-up marks it interrupted. Never turn a delivered answer into an error.
                log.error("could not store answer %s: %s", self.message_id, type(exc).__name__)
            if (
                self._remember is not None
                and outcome.status is MessageStatus.COMPLETE
                and outcome.grounded
                and outcome.content
            ):
                self._remember(pieces)
            report = _report(self.conversation_id, self.message_id, self._mode, outcome, self.cached, len(self._passages))
            report.store_ms = _ms_since(storing)
            self._observer.turn_finished(report, streamed=True)

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
        body: dict[str, Any] = {
            "conversation_id": str(self.conversation_id),
            "message_id": str(self.message_id),
            "answer": "".join(answer),
            "sources": sources,
            "grounded": grounded,
            "cached": cached,
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
