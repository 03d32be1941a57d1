"""Wiring: builds every service from the settings and a database engine (no Flask here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.services import answer_cache as answer_cache_tuning
from app.services import health as health_tuning
from app.services.answer_cache import AnswerCache
from app.services.answering import offline as offline_tuning
from app.services.answering.base import Answerer
from app.services.answering.offline import OfflineAnswerer
from app.services.answering.rewriting import ConcatenatingRewriter, QueryRewriter
from app.services.chat import ChatService
from app.services.conversations import ConversationStore
from app.services.errors import ServiceUnavailable
from app.services.health import HealthService
from app.services.index import SearchIndex, open_index, open_index_writer
from app.services.ingestion.pipeline import Ingester, IngestSummary
from app.services.live_turns import LiveTurns
from app.services.observer import Observer
from app.services.retrieval.retriever import Retriever
from app.services.retention import RetentionScheduler
from app.services.retrieval.sparse import Bm25Encoder
from app.services.startup import Startup

log = logging.getLogger(__name__)


class SchemaGuard(Protocol):
    """Brings the database schema up to date (`ensure`), and says whether it still is not."""

    pending: bool

    def ensure(self) -> object:
        """Migrate now or keep trying in the background; returns a note for the start-up log."""
        ...


@dataclass
class Services:
    """Everything the blueprints, the CLI and `flask shell` use."""

    settings: Settings
    store: ConversationStore
    index: SearchIndex
    retriever: Retriever
    answerer: Answerer
    chat: ChatService
    health: HealthService
    startup: Startup
    answer_cache: AnswerCache | None = None
    retention: RetentionScheduler | None = None  # with RETENTION_DAYS: purges old conversations
    live_turns: LiveTurns | None = None  # this process's answers in progress and heartbeat

    def ingest_book(self, *, full: bool = False, show_progress: bool = False) -> IngestSummary:
        """Bring the index up to date with DOCS_PATH."""
        return ingest_book(self.settings, full=full, show_progress=show_progress)


def gemini_provider(settings: Settings) -> Any:
    """The process's one Gemini client (shared by threads), or None without GEMINI_API_KEY."""
    if not settings.gemini_enabled:
        return None
    return _gemini_provider(_gemini_config(settings))


@lru_cache(maxsize=4)
def _gemini_provider(config: Any) -> Any:
    # Imported lazily: google-genai costs start-up time that the offline mode never needs.
    from app.services.providers.gemini import GeminiProvider

    return GeminiProvider(config)


def _gemini_config(settings: Settings) -> Any:
    from app.services.providers import gemini

    assert settings.gemini_api_key is not None
    # The tuning constants are read now (not imported by name) so that tests can change them.
    return gemini.GeminiConfig(
        api_key=settings.gemini_api_key.get_secret_value(),
        model=settings.gemini_model,
        embedding_model=settings.gemini_embedding_model,
        embedding_dim=gemini.EMBEDDING_DIM,
        base_url=settings.gemini_base_url,
        timeout_seconds=gemini.TIMEOUT_SECONDS,
        max_attempts=gemini.MAX_ATTEMPTS,
        max_backoff=gemini.MAX_RETRY_WAIT_SECONDS,
    )


def make_embedder(settings: Settings) -> Any:
    """Gemini embeddings when GEMINI_API_KEY is set, else None (keyword retrieval only)."""
    return gemini_provider(settings)


def make_retriever(settings: Settings, index: SearchIndex, embedder: Any) -> Retriever:
    """The retriever the service (and the retrieval benchmark) uses."""
    return Retriever(index, Bm25Encoder(), embedder)


def make_answerer(settings: Settings) -> tuple[Answerer, QueryRewriter]:
    """Gemini answers and follow-up rewriting with a key; the offline answerer without."""
    provider = gemini_provider(settings)
    if provider is None:
        offline = OfflineAnswerer(token_delay_seconds=offline_tuning.TOKEN_DELAY_SECONDS)
        return offline, ConcatenatingRewriter()
    from app.services.answering import gemini

    answerer = gemini.GeminiAnswerer(
        provider, history_token_budget=gemini.HISTORY_TOKENS, max_output_tokens=gemini.MAX_OUTPUT_TOKENS
    )
    return answerer, gemini.GeminiQueryRewriter(provider)


def make_ingester(settings: Settings) -> Ingester:
    """An ingester for the configured index (ingestion is occasional: built on demand)."""
    return Ingester(open_index_writer(settings), Bm25Encoder(), embedder=make_embedder(settings))


def ingest_book(settings: Settings, *, full: bool = False, show_progress: bool = False) -> IngestSummary:
    """Bring the configured index up to date with the book at DOCS_PATH."""
    return make_ingester(settings).ingest(
        settings.docs_path,
        site_url=settings.book_site_url,
        route_base_path=settings.book_route_base_path,
        full=full,
        show_progress=show_progress,
    )


def _index_the_book(settings: Settings) -> object:
    # An index that cannot be refreshed now (Gemini unreachable for embeddings) must not keep
    # the service from serving the version it already has; health shows an empty index as down.
    try:
        return ingest_book(settings).as_dict()
    except ServiceUnavailable as exc:
        log.error("could not bring the index up to date at start-up: %s", exc.code)
        return f"skipped ({exc.code}); serving the existing index"


def build_services(
    settings: Settings,
    engine: Engine,
    observer: Observer | None = None,
    schema: SchemaGuard | None = None,
) -> Services:
    """Create the services for one process; `observer` receives their metrics events, and
    `schema` (from the app) brings the database schema up to date at start-up."""
    store = ConversationStore(sessionmaker(bind=engine, expire_on_commit=False))
    index = open_index(settings)
    retriever = make_retriever(settings, index, make_embedder(settings))
    answerer, rewriter = make_answerer(settings)
    provider = gemini_provider(settings)
    if provider is not None and observer is not None:
        provider.observer = observer  # one provider per process, like the observer
    cache_size = answer_cache_tuning.MAX_ENTRIES
    answer_cache = AnswerCache(cache_size) if cache_size else None
    # Gemini unavailable is not "no answer": the extractive answerer steps in unless turned off.
    fallback = OfflineAnswerer() if provider is not None and settings.gemini_fallback else None
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

    def check_index() -> dict[str, Any]:
        points = index.count()
        return {
            "state": "up" if points else "down",
            "points": points,
            "version": index.version(),
            "engine": "embedded" if settings.embedded_index else "qdrant",
        }

    def check_database() -> dict[str, Any]:
        store.ping()
        if schema is not None and schema.pending:
            return {"state": "down", "backend": engine.dialect.name, "schema": "migrations pending"}
        return {"state": "up", "backend": engine.dialect.name}

    def check_answerer() -> dict[str, Any]:
        provider = gemini_provider(settings)
        if provider is None:
            return {"state": "up", "mode": answerer.name}
        # From the circuit breaker's memory of real calls: a probe would spend quota.
        breaker = provider.breaker
        return {
            "state": "down" if breaker.state == "open" else "up",
            "mode": "gemini",
            "model": settings.gemini_model,
            "circuit": breaker.state,
            "consecutive_failures": breaker.consecutive_failures,
        }

    def mark_abandoned_answers() -> int | str:
        # Best effort: a database that is down now must not keep the service from starting;
        # health reports it, and the next start sweeps again.
        try:
            return live_turns.sweep()
        except SQLAlchemyError as exc:
            log.warning("could not sweep abandoned answers: %s", type(exc).__name__)
            return "skipped (database unavailable)"

    tasks: list[tuple[str, Any]] = []
    if schema is not None:
        tasks.append(("apply database migrations", schema.ensure))
    tasks.append(("mark abandoned answers interrupted", mark_abandoned_answers))
    if settings.embedded_index and settings.index_on_start and settings.docs_path.is_dir():
        tasks.append(("index the book", lambda: _index_the_book(settings)))

    def load_live_index() -> str | None:
        # Ready means serving the version just built, not the one seen a second ago. An index
        # that cannot be reached (Qdrant Cloud down) is health's to report, not start-up's.
        try:
            return index.refresh()
        except Exception as exc:  # noqa: BLE001
            log.warning("the index cannot be read yet: %s", type(exc).__name__)
            return None

    tasks.append(("load the live index", load_live_index))
    retention = RetentionScheduler(engine, settings.retention_days) if settings.retention_days else None
    if retention is not None:
        # In the background: a purge never delays readiness. Requests check again hourly.
        tasks.append(("check whether old conversations are due for deletion", retention.maybe_start))
    startup = Startup(settings.instance_path / "startup.lock", tasks)
    health = HealthService(
        {"database": check_database, "index": check_index, "answerer": check_answerer},
        startup_state=lambda: startup.state,
        cache_seconds=health_tuning.CACHE_SECONDS,
    )
    return Services(
        settings, store, index, retriever, answerer, chat, health, startup, answer_cache, retention, live_turns
    )
