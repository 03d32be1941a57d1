"""Wiring: builds every service from the settings and a database engine (no Flask here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from app.config import Settings
from app.services.answering.base import Answerer
from app.services.answering.offline import OfflineAnswerer
from app.services.chat import ChatService
from app.services.conversations import ConversationStore
from app.services.health import HealthService
from app.services.index import SearchIndex, open_index, open_index_writer
from app.services.ingestion.pipeline import Ingester, IngestSummary
from app.services.retrieval.retriever import Retriever
from app.services.retrieval.sparse import Bm25Encoder
from app.services.startup import Startup

log = logging.getLogger(__name__)


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

    def ingest_book(self, *, full: bool = False, show_progress: bool = False) -> IngestSummary:
        """Bring the index up to date with DOCS_PATH."""
        return ingest_book(self.settings, full=full, show_progress=show_progress)


def make_embedder(settings: Settings) -> Any:
    """Gemini embeddings when GEMINI_API_KEY is set, else None (keyword retrieval only)."""
    return None


def make_retriever(settings: Settings, index: SearchIndex, embedder: Any) -> Retriever:
    """The retriever the service (and the retrieval benchmark) uses."""
    return Retriever(index, Bm25Encoder(), embedder, top_k=settings.retrieval_top_k)


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


def build_services(settings: Settings, engine: Engine) -> Services:
    """Create the services for one process."""
    store = ConversationStore(sessionmaker(bind=engine, expire_on_commit=False))
    index = open_index(settings)
    retriever = make_retriever(settings, index, make_embedder(settings))
    answerer = OfflineAnswerer(token_delay_seconds=settings.offline_token_delay_ms / 1000)
    chat = ChatService(store, retriever, answerer)

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
        return {"state": "up", "backend": engine.dialect.name}

    def check_answerer() -> dict[str, Any]:
        return {"state": "up", "mode": answerer.name}

    def mark_abandoned_answers() -> int | str:
        # Best effort: a database that is down now must not keep the service from starting;
        # health reports it, and the next start sweeps again.
        try:
            return store.mark_abandoned_streams()
        except SQLAlchemyError as exc:
            log.warning("could not sweep abandoned answers: %s", type(exc).__name__)
            return "skipped (database unavailable)"

    tasks: list[tuple[str, Any]] = [("mark abandoned answers interrupted", mark_abandoned_answers)]
    if settings.embedded_index and settings.index_on_start and settings.docs_path.is_dir():
        tasks.append(("index the book", lambda: ingest_book(settings).as_dict()))
    startup = Startup(settings.instance_path / "startup.lock", tasks)
    health = HealthService(
        {"database": check_database, "index": check_index, "answerer": check_answerer},
        startup_state=lambda: startup.state,
        cache_seconds=settings.health_cache_seconds,
    )
    return Services(settings, store, index, retriever, answerer, chat, health, startup)
