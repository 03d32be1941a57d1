"""A chat turn from question to stored answer, as a stream of widget events (steps 1-2 here,
3-4 in app/services/chat_turn.py).

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

import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from app.models import MessageStatus
from app.services.answer_cache import CACHE_ANSWERER, AnswerCache, CachedAnswer, CacheKey
from app.services.answering.base import Answerer, AnswerRequest, AnswerUnavailable
from app.services.answering.offline import OfflineAnswer, OfflineAnswerer
from app.services.answering.rewriting import ConcatenatingRewriter, QueryRewriter
from app.services.answering.shaping import TEXT
from app.services.chat_turn import ChatTurn, Remember, TurnContext, ms_since, turn_report
from app.services.conversations import ConversationStore, OpenTurn, TurnOutcome
from app.services.errors import ErrorCode, ServiceUnavailable
from app.services.index.base import IndexNotReady
from app.services.live_turns import LiveTurns
from app.services.observer import NULL_OBSERVER, Observer
from app.services.retrieval.retriever import Passage, Retriever

log = logging.getLogger(__name__)

FALLBACK_NOTE = "Gemini is unavailable right now, so this answer quotes the book directly."


@dataclass(frozen=True)
class ChatQuestion:
    """A validated request from the widget."""

    message: str
    mode: str = "general"
    context: str | None = None
    conversation_id: uuid.UUID | None = None
    format: str = TEXT  # "text" (plain prose, the widget's) or "markdown"
    page: str | None = None  # URL or path of the page the reader is on


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
                question.conversation_id,
                question.message,
                question.mode,
                question.context,
                worker_id=self.live_turns.owner(),
            )
        except SQLAlchemyError as exc:
            # Fail fast: an answer that cannot be kept is not worth streaming.
            log.warning("cannot store the question: %s", type(exc).__name__)
            raise ServiceUnavailable(
                ErrorCode.DATABASE_UNAVAILABLE,
                "Conversations cannot be stored right now; please retry shortly.",
                retry_after=5,
            ) from exc
        if cached is not None:
            return self._replay(turn, cached, started, question.mode, question.format)
        try:
            query, fallback = self._retrieval_queries(question, turn.history)
            retrieval = self.retriever.retrieve(query, alternatives=fallback, page=question.page)
            passages = retrieval.passages
            if question.mode == "selection" and question.context:
                # Cite where the selection comes from, with its neighbours as extra context.
                passages = _merge(self.retriever.locate(question.context), passages, self.retriever.top_k + 2)
        except IndexNotReady as exc:
            self._fail(turn, question.mode, started, ErrorCode.INDEX_NOT_READY)
            raise ServiceUnavailable(ErrorCode.INDEX_NOT_READY, "The book's index is not built yet.") from exc
        except Exception as exc:  # Qdrant Cloud down, network, auth: the reader needs a 503, not a 500
            log.warning("retrieval failed: %s", type(exc).__name__)
            self._fail(turn, question.mode, started, ErrorCode.INDEX_UNAVAILABLE)
            raise ServiceUnavailable(
                ErrorCode.INDEX_UNAVAILABLE, "The book's index is unavailable right now.", retry_after=5
            ) from exc
        self.observer.retrieval_finished(retrieval.elapsed_ms / 1000)
        request = AnswerRequest(
            question=question.message,
            passages=passages,
            mode=question.mode,
            selection=question.context,
            history=turn.history,
            format=question.format,
        )
        answered_by: Answerer = self.answerer
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
            answered_by = self.fallback
            stream = OfflineAnswer(f"{FALLBACK_NOTE} {self.fallback.compose(request)}")
            first = None
        context = TurnContext(
            turn=turn,
            answerer_name=answered_by.name,
            passages=passages,
            started=started,
            retrieval_ms=retrieval.elapsed_ms,
            mode=question.mode,
            answer_format=question.format,
            selection=question.context if question.mode == "selection" else None,
            strip_markdown=question.format == TEXT and answered_by.writes_markdown,
            fallback_from=fallback_from,
        )
        # A fallback answer is never cached: the next reader should get Gemini's.
        remember = None if fallback_from else self._remember(cache_key, passages)
        return ChatTurn(
            context, stream, first, live_turns=self.live_turns, observer=self.observer, remember=remember
        )

    # --- the answer cache (first-turn general questions; see app/services/answer_cache.py) ------
    def _cache_key(self, question: ChatQuestion) -> CacheKey | None:
        if (
            self.answer_cache is None
            or question.mode != "general"
            or question.conversation_id is not None
            or question.page
        ):
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

    def _remember(self, key: CacheKey | None, passages: list[Passage]) -> Remember | None:
        cache = self.answer_cache
        if key is None or cache is None:
            return None
        answerer = self.answerer.name
        # The shaped pieces and the passages they cite: a replay is exactly what was streamed.
        return lambda pieces, cited: cache.put(key, CachedAnswer(tuple(pieces), tuple(cited), answerer))

    def _replay(
        self, turn: OpenTurn, cached: CachedAnswer, started: float, mode: str, answer_format: str
    ) -> ChatTurn:
        # No retrieval and no answerer: the stored turn and the stream are those of a normal
        # answer, with answerer "cache" and `cached: true` in `done`.
        context = TurnContext(
            turn=turn,
            answerer_name=CACHE_ANSWERER,
            passages=list(cached.passages),
            started=started,
            retrieval_ms=None,
            mode=mode,
            answer_format=answer_format,
            cached=True,
            original_answerer=cached.answerer,
        )
        return ChatTurn(context, cached.replay(), None, live_turns=self.live_turns, observer=self.observer)

    def _retrieval_queries(
        self, question: ChatQuestion, history: list[tuple[str, str]]
    ) -> tuple[str, tuple[str, ...]]:
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

    def _fail(
        self, turn: OpenTurn, mode: str, started: float, code: str, retrieval_ms: int | None = None
    ) -> None:
        outcome = TurnOutcome(
            content="",
            status=MessageStatus.FAILED,
            error_code=code,
            answerer=self.answerer.name,
            retrieval_ms=retrieval_ms,
            total_ms=ms_since(started),
        )
        self.store.finish_turn(turn.assistant_message_id, outcome)
        self.observer.turn_finished(
            turn_report(turn, mode, outcome, cached=False, passages=0), streamed=False
        )


def _merge(first: list[Passage], then: list[Passage], limit: int) -> list[Passage]:
    seen: set[tuple[str, str | None]] = set()
    merged: list[Passage] = []
    for passage in first + then:
        key = (passage.file, passage.anchor)
        if key not in seen:
            seen.add(key)
            merged.append(passage)
    return merged[:limit]
