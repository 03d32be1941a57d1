"""The search index: the embedded engine by default, Qdrant Cloud when QDRANT_URL is set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.config import Settings
from app.services.index.base import (
    IndexHit,
    IndexNotReady,
    IndexPoint,
    IndexSpec,
    IndexWriter,
    SearchIndex,
    SearchRequest,
    point_id,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = [
    "IndexHit",
    "IndexNotReady",
    "IndexPoint",
    "IndexSpec",
    "IndexWriter",
    "SearchIndex",
    "SearchRequest",
    "open_index",
    "open_index_writer",
    "point_id",
]


def _qdrant_client(settings: Settings) -> QdrantClient:
    # Imported here: qdrant-client costs ~0.6 s of start-up that the embedded mode never needs.
    from qdrant_client import QdrantClient

    api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return QdrantClient(url=settings.qdrant_url, api_key=api_key, timeout=10)


def open_index(settings: Settings) -> SearchIndex:
    """The read side for serving."""
    if settings.embedded_index:
        from app.services.index.edge import EdgeIndex

        return EdgeIndex(settings.index_path / settings.qdrant_collection)
    from app.services.index.cloud import QdrantIndex

    return QdrantIndex(_qdrant_client(settings), settings.qdrant_collection)


def open_index_writer(settings: Settings) -> IndexWriter:
    """The write side for ingestion."""
    if settings.embedded_index:
        from app.services.index.edge import EdgeIndexWriter

        return EdgeIndexWriter(settings.index_path / settings.qdrant_collection)
    from app.services.index.cloud import QdrantIndex

    return QdrantIndex(_qdrant_client(settings), settings.qdrant_collection)
