"""What every index engine offers: hybrid search for the service, versioned writes for ingestion.

Two engines implement it: the embedded one (`qdrant-edge-py`, in-process, the default) and Qdrant
Cloud (`qdrant-client`). Both keep a sparse BM25 vector named `bm25` and, when Gemini embeddings
are configured, a dense vector named `dense`; both fuse the two with Qdrant's own RRF.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.services.retrieval.sparse import SparseVector

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
# Namespace for point ids: uuid5(chunk key) keeps ids stable across re-ingests.
POINT_NAMESPACE = uuid.UUID("6b1f3c8e-2f4d-4a51-9a0e-3c1d2b7e9f10")


def point_id(key: str) -> str:
    """The stable point id of a chunk key."""
    return str(uuid.uuid5(POINT_NAMESPACE, key))


@dataclass(frozen=True)
class IndexPoint:
    """One chunk as stored: its vectors and its payload (text, file, url, hash ...)."""

    id: str
    sparse: SparseVector
    payload: dict[str, Any]
    dense: list[float] | None = None


@dataclass(frozen=True)
class IndexHit:
    """A search result: the point's id, its score and its payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class SearchRequest:
    """A query: sparse and/or dense; `files` restricts to those source files; `fields` names the
    payload keys to return (None: the whole payload)."""

    sparse: SparseVector | None
    dense: list[float] | None = None
    limit: int = 10
    prefetch_limit: int = 50
    files: tuple[str, ...] | None = None
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class IndexSpec:
    """How a version of the index is built: the dense size (None: keyword only)."""

    dense_dim: int | None
    meta: dict[str, Any] = field(default_factory=dict)


class IndexNotReady(RuntimeError):
    """No version of the index has been built yet."""


class SearchIndex(Protocol):
    """The read side, used by the serving workers."""

    def search(self, request: SearchRequest) -> list[IndexHit]:
        """Best points for the request, best first (RRF when both vectors are given)."""
        ...

    def payloads(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The whole payload of each point still in the live version, by id."""
        ...

    def matching_terms(self, ids: Sequence[str], wanted: frozenset[int]) -> dict[str, frozenset[int]]:
        """Of the keyword term ids `wanted`, those each point's sparse vector holds, by id (a point
        holding none, or gone from the live version, may be left out). The relevance floor asks
        it of the candidates it weighs, for the terms it weighs, not of every search's hits:
        converting 100 sparse vectors to Python was most of a keyword search's CPU
        (bench/README.md, "CPU per answer")."""
        ...

    def scroll(self, files: tuple[str, ...] | None = None) -> list[IndexHit]:
        """Every point (optionally of some files), without vectors, in no particular order."""
        ...

    def count(self) -> int:
        """Points in the live version."""
        ...

    def term_frequencies(self) -> tuple[int, dict[int, int]]:
        """(points, keyword term id → points whose sparse vector holds it) of the live version.

        What Qdrant's IDF is computed from; the relevance floor weighs a question's terms by it.
        """
        ...

    def version(self) -> str | None:
        """An id of the live version (changes on every write), or None before the first build."""
        ...

    def spec(self) -> IndexSpec | None:
        """How the live version was built, or None before the first build."""
        ...

    def refresh(self) -> str | None:
        """Pick up the live version now rather than at the next periodic check."""
        ...


class IndexWriter(Protocol):
    """The write side, used by ingestion."""

    def live_hashes(self) -> dict[str, str]:
        """point id → content hash of every point in the live version."""
        ...

    def live_spec(self) -> IndexSpec | None:
        """How the live version was built, or None before the first build."""
        ...

    def write(
        self, spec: IndexSpec, upserts: list[IndexPoint], deletes: list[str], *, full: bool
    ) -> str | None:
        """Apply a change and make it live atomically; returns the new version (None: no-op).

        `full` builds a new version from nothing beside the live one and switches to it.
        """
        ...
