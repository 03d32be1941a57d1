"""Wiring: builds every service from the settings and a database engine (no Flask here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.services.answer_cache import AnswerCache
from app.services.answering.base import Answerer
from app.services.answering.offline import OfflineAnswerer
from app.services.answering.rewriting import ConcatenatingRewriter, QueryRewriter
from app.services.chat import ChatService
from app.services.conversations import ConversationStore
from app.services.feedback import FeedbackStore
from app.services.health import HealthService, check_answerer, check_database, check_disk, check_index
from app.services.index import SearchIndex, open_index, open_index_writer
from app.services.ingestion.pipeline import Ingester, IngestSummary
from app.services.live_turns import LiveTurns
from app.services.observer import Observer
from app.services.retention import RetentionScheduler
from app.services.retrieval.retriever import Retriever
from app.services.retrieval.sparse import Bm25Encoder
from app.services.startup import (
    SchemaGuard,
    Startup,
    Task,
    index_the_book,
    load_live_index,
    mark_abandoned_answers,
)
from app.tuning import Tuning

if TYPE_CHECKING:
    from app.services.providers.gemini import GeminiConfig, GeminiProvider


@dataclass
class Services:
    """Everything the blueprints, the CLI and `flask shell` use."""

    settings: Settings
    store: ConversationStore
    feedback: FeedbackStore
    index: SearchIndex
    retriever: Retriever
    answerer: Answerer
    chat: ChatService
    health: HealthService
    startup: Startup
    answer_cache: AnswerCache | None = None
    retention: RetentionScheduler | None = None  # with RETENTION_DAYS: purges old conversations
    live_turns: LiveTurns | None = None  # this process's answers in progress and heartbeat
    gemini: GeminiProvider | None = None  # the one Gemini client (shared by threads), with a key

    def ingester(self) -> Ingester:
        """An ingester for the configured index, embedding with this container's Gemini client."""
        return make_ingester(self.settings, embedder=self.gemini)

    def ingest_book(self, *, full: bool = False, show_progress: bool = False) -> IngestSummary:
        """Bring the index up to date with DOCS_PATH."""
        return ingest_book(self.settings, embedder=self.gemini, full=full, show_progress=show_progress)


def make_gemini_provider(
    settings: Settings, observer: Observer | None = None, tuning: Tuning | None = None
) -> GeminiProvider | None:
    """A Gemini client (a connection pool, a circuit breaker), or None without GEMINI_API_KEY.

    Build one per container and share it: its breaker must see every call of the process.
    """
    if not settings.gemini_enabled:
        return None
    # Imported lazily: google-genai costs start-up time that the offline mode never needs.
    from app.services.providers.gemini import GeminiProvider

    provider = GeminiProvider(_gemini_config(settings, tuning or Tuning()))
    if observer is not None:
        provider.observer = observer
    return provider


def _gemini_config(settings: Settings, tuning: Tuning) -> GeminiConfig:
    from app.services.providers.gemini import GeminiConfig

    assert settings.gemini_api_key is not None
    return GeminiConfig(
        api_key=settings.gemini_api_key.get_secret_value(),
        model=settings.gemini_model,
        embedding_model=settings.gemini_embedding_model,
        embedding_dim=tuning.embedding_dim,
        base_url=settings.gemini_base_url,
        timeout_seconds=tuning.gemini_timeout_seconds,
        max_attempts=tuning.gemini_max_attempts,
        max_backoff=tuning.gemini_max_retry_wait_seconds,
    )


def make_embedder(settings: Settings, tuning: Tuning | None = None) -> GeminiProvider | None:
    """Gemini embeddings when GEMINI_API_KEY is set, else None (keyword retrieval only): a client
    of its own, for tools that build no container (benchmarks)."""
    return make_gemini_provider(settings, tuning=tuning)


def make_retriever(index: SearchIndex, embedder: Any) -> Retriever:
    """The retriever the service (and the retrieval benchmark) uses."""
    return Retriever(index, Bm25Encoder(), embedder)


def make_answerer(
    provider: GeminiProvider | None, retriever: Retriever | None = None, tuning: Tuning | None = None
) -> tuple[Answerer, QueryRewriter]:
    """Gemini answers and follow-up rewriting through `provider`; the offline answerer without
    (weighing words by the book's IDF, from `retriever`)."""
    if provider is None:
        offline = OfflineAnswerer(
            token_delay_seconds=(tuning or Tuning()).token_delay_seconds,
            book_idf=retriever.book_idf if retriever else None,
        )
        return offline, ConcatenatingRewriter()
    from app.services.answering import gemini

    answerer = gemini.GeminiAnswerer(
        provider, history_token_budget=gemini.HISTORY_TOKENS, max_output_tokens=gemini.MAX_OUTPUT_TOKENS
    )
    return answerer, gemini.GeminiQueryRewriter(provider)


_OWN_EMBEDDER: Any = object()  # make_ingester's default: a Gemini client of its own, if keyed


def make_ingester(
    settings: Settings, embedder: Any = _OWN_EMBEDDER, tuning: Tuning | None = None
) -> Ingester:
    """An ingester for the configured index (ingestion is occasional: built on demand); its own
    Gemini client, unless given `embedder`, is built with `tuning`."""
    if embedder is _OWN_EMBEDDER:
        embedder = make_embedder(settings, tuning)
    return Ingester(open_index_writer(settings), Bm25Encoder(), embedder=embedder)


def ingest_book(
    settings: Settings,
    *,
    embedder: Any = _OWN_EMBEDDER,
    full: bool = False,
    show_progress: bool = False,
    tuning: Tuning | None = None,
) -> IngestSummary:
    """Bring the configured index up to date with the book at DOCS_PATH."""
    return make_ingester(settings, embedder, tuning).ingest(
        settings.docs_path,
        site_url=settings.book_site_url,
        route_base_path=settings.book_route_base_path,
        full=full,
        show_progress=show_progress,
    )


def build_services(
    settings: Settings,
    engine: Engine,
    observer: Observer | None = None,
    schema: SchemaGuard | None = None,
    tuning: Tuning | None = None,
) -> Services:
    """Create the services for one process with `tuning` (default: the production constants);
    `observer` receives their metrics events, and `schema` (from the app) brings the database
    schema up to date at start-up."""
    tuning = tuning or Tuning()
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    store = ConversationStore(sessions)
    provider = make_gemini_provider(settings, observer, tuning)
    index = open_index(settings)
    retriever = make_retriever(index, provider)
    answerer, rewriter = make_answerer(provider, retriever, tuning)
    cache_size = tuning.answer_cache_entries
    answer_cache = AnswerCache(cache_size) if cache_size else None
    # Gemini unavailable is not "no answer": the extractive answerer steps in unless turned off.
    fallback = (
        OfflineAnswerer(book_idf=retriever.book_idf)
        if provider is not None and settings.gemini_fallback
        else None
    )
    live_turns = LiveTurns(store, observer=observer)
    chat = ChatService(
        store,
        retriever,
        answerer,
        rewriter,
        observer=observer,
        answer_cache=answer_cache,
        fallback=fallback,
        live_turns=live_turns,
    )
    retention = RetentionScheduler(engine, settings.retention_days) if settings.retention_days else None
    tasks = _startup_tasks(
        settings,
        schema,
        live_turns,
        index,
        retriever,
        partial(ingest_book, settings, embedder=provider),
        retention,
    )
    startup = Startup(settings.instance_path / "startup.lock", tasks)
    health = HealthService(
        {
            "database": partial(check_database, store, engine.dialect.name, schema),
            "index": partial(check_index, index, embedded=settings.embedded_index),
            "answerer": partial(check_answerer, answerer.name, provider),
            "disk": partial(check_disk, settings.instance_path),
        },
        startup_state=lambda: startup.state,
        cache_seconds=tuning.health_cache_seconds,
        deadline_seconds=tuning.health_deadline_seconds,
    )
    return Services(
        settings,
        store,
        FeedbackStore(sessions),
        index,
        retriever,
        answerer,
        chat,
        health,
        startup,
        answer_cache=answer_cache,
        retention=retention,
        live_turns=live_turns,
        gemini=provider,
    )


def _startup_tasks(
    settings: Settings,
    schema: SchemaGuard | None,
    live_turns: LiveTurns,
    index: SearchIndex,
    retriever: Retriever,
    ingest: Callable[[], IngestSummary],
    retention: RetentionScheduler | None,
) -> list[Task]:
    """What must be done before the service is ready, in order."""
    tasks: list[Task] = []
    if schema is not None:
        tasks.append(("apply database migrations", schema.ensure))
    tasks.append(("mark abandoned answers interrupted", partial(mark_abandoned_answers, live_turns)))
    if settings.embedded_index and settings.index_on_start and settings.docs_path.is_dir():
        tasks.append(("index the book", partial(index_the_book, ingest)))
    tasks.append(("load the live index", partial(load_live_index, index)))
    # The relevance floor's term counts: a scan of the index, paid here rather than by a reader.
    tasks.append(("count the book's terms", retriever.warm))
    if retention is not None:
        # In the background: a purge never delays readiness. Requests check again hourly.
        tasks.append(("check whether old conversations are due for deletion", retention.maybe_start))
    return tasks
