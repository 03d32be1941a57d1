"""Qdrant Cloud (or any Qdrant server) through `qdrant-client`, with the same behaviour as Edge.

The service reads through an alias named QDRANT_COLLECTION; each full rebuild creates a new
physical collection `<alias>__<version>` beside the live one and re-points the alias in one
atomic `update_collection_aliases` call, so queries never see a half-built index. Incremental
writes go to the live collection directly (Qdrant applies each batch atomically per point).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from qdrant_client import QdrantClient, models

from app.services.index.base import (
    DENSE_VECTOR,
    SPARSE_VECTOR,
    IndexHit,
    IndexNotReady,
    IndexPoint,
    IndexSpec,
    SearchRequest,
)

log = logging.getLogger(__name__)

_UPSERT_BATCH = 128
_META_ID = str(uuid.UUID(int=0))  # a vector-less point holding the version's manifest


class QdrantIndex:
    """Read and write side over a Qdrant server (or qdrant-client's local mode in tests)."""

    def __init__(self, client: QdrantClient, alias: str, spec_ttl_seconds: float = 5.0) -> None:
        self.client = client
        self.alias = alias
        self._spec_ttl = spec_ttl_seconds
        self._spec_cache: tuple[float, str | None, IndexSpec | None] = (0.0, None, None)

    # --- read -----------------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[IndexHit]:
        """Sparse, dense or hybrid (RRF) search through the alias."""
        spec = self.spec()
        if spec is None:
            raise IndexNotReady(f"Qdrant has no collection or alias {self.alias!r} (run: flask ingest)")
        flt = _files_filter(request.files)
        payload: bool | list[str] = True if request.fields is None else list(request.fields)
        sparse = (
            models.SparseVector(indices=list(request.sparse.indices), values=list(request.sparse.values))
            if request.sparse
            else None
        )
        dense = request.dense if spec.dense_dim else None  # a keyword-only version ignores it
        if dense is not None and sparse is not None:
            response = self.client.query_points(
                self.alias,
                prefetch=[
                    models.Prefetch(
                        query=list(dense), using=DENSE_VECTOR, limit=request.prefetch_limit, filter=flt
                    ),
                    models.Prefetch(
                        query=sparse, using=SPARSE_VECTOR, limit=request.prefetch_limit, filter=flt
                    ),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=request.limit,
                with_payload=payload,
            )
        elif dense is not None or sparse is not None:
            response = self.client.query_points(
                self.alias,
                query=list(dense) if dense is not None else sparse,
                using=DENSE_VECTOR if dense is not None else SPARSE_VECTOR,
                query_filter=flt,
                limit=request.limit,
                with_payload=payload,
            )
        else:
            return []
        return [IndexHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def payloads(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The whole payload of each point still in the collection, by id."""
        records = self.client.retrieve(self.alias, ids=list(ids), with_payload=True, with_vectors=False)
        return {str(r.id): dict(r.payload or {}) for r in records}

    def matching_terms(self, ids: Sequence[str], wanted: frozenset[int]) -> dict[str, frozenset[int]]:
        """Of `wanted`, the term ids each point's sparse vector holds, by id (one request)."""
        records = self.client.retrieve(
            self.alias, ids=list(ids), with_payload=False, with_vectors=[SPARSE_VECTOR]
        )
        return {str(r.id): _matches(r.vector, wanted) for r in records}

    def scroll(self, files: tuple[str, ...] | None = None) -> list[IndexHit]:
        """Every chunk point (optionally of some files), without vectors."""
        return [hit for hit in self._scroll(self.alias, _files_filter(files)) if hit.id != _META_ID]

    def term_frequencies(self) -> tuple[int, dict[int, int]]:
        """(chunk points, term id → chunk points holding it), counted from their sparse vectors."""
        counts: Counter[int] = Counter()
        points = 0
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.alias, limit=512, offset=offset, with_payload=False, with_vectors=[SPARSE_VECTOR]
            )
            for record in records:
                vector = record.vector.get(SPARSE_VECTOR) if isinstance(record.vector, dict) else None
                if isinstance(vector, models.SparseVector):  # the manifest point has none
                    points += 1
                    counts.update(vector.indices)
            if offset is None:
                return points, dict(counts)

    def count(self) -> int:
        """Chunk points in the live collection."""
        if self.spec() is None:
            return 0
        return max(0, self.client.count(self.alias, exact=True).count - 1)

    def version(self) -> str | None:
        """The live version's name (changes on every write)."""
        self.spec()
        return self._spec_cache[1]

    def refresh(self) -> str | None:
        """Forget the cached metadata and read the live version now."""
        self._spec_cache = (0.0, None, None)
        return self.version()

    def spec(self) -> IndexSpec | None:
        """How the live collection was built (cached a few seconds; it is read per query)."""
        checked_at, _, spec = self._spec_cache
        if time.monotonic() - checked_at < self._spec_ttl:
            return spec
        meta = self._read_meta(self.alias)
        if meta is None:
            self._spec_cache = (time.monotonic(), None, None)
            return None
        spec = IndexSpec(dense_dim=meta.get("dense_dim"), meta=meta.get("meta", {}))
        self._spec_cache = (time.monotonic(), meta.get("version"), spec)
        return spec

    # --- write ----------------------------------------------------------------------------------
    def live_hashes(self) -> dict[str, str]:
        """point id → content hash of every chunk in the live collection."""
        if self._read_meta(self.alias) is None:
            return {}
        return {hit.id: hit.payload.get("content_hash", "") for hit in self.scroll()}

    def live_spec(self) -> IndexSpec | None:
        """How the live collection was built (uncached: ingestion must see the truth)."""
        meta = self._read_meta(self.alias)
        return None if meta is None else IndexSpec(meta.get("dense_dim"), meta.get("meta", {}))

    def write(
        self, spec: IndexSpec, upserts: list[IndexPoint], deletes: list[str], *, full: bool
    ) -> str | None:
        """Apply the change in place, or build a new collection and switch the alias."""
        if not full and not upserts and not deletes:
            return None
        version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        live_collection = self._alias_target()
        if full or live_collection is None:
            target = f"{self.alias}__{version}"
            self._create_collection(target, spec.dense_dim)
        else:
            target = live_collection
        if deletes:
            ids: list[models.ExtendedPointId] = list(deletes)
            self.client.delete(target, points_selector=models.PointIdsList(points=ids), wait=True)
        for start in range(0, len(upserts), _UPSERT_BATCH):
            self.client.upsert(
                target, points=[_to_point(p) for p in upserts[start : start + _UPSERT_BATCH]], wait=True
            )
        meta = {"version": version, "dense_dim": spec.dense_dim, "meta": spec.meta}
        self.client.upsert(
            target,
            points=[models.PointStruct(id=_META_ID, vector={}, payload={"__index_meta__": meta})],
            wait=True,
        )
        if target != live_collection:
            if live_collection is None and self.client.collection_exists(self.alias):
                # A plain collection with the alias's name (the first backend made one) blocks
                # the alias; it has no index metadata, so the service cannot use it anyway.
                log.warning("replacing the plain collection %r with an alias to %r", self.alias, target)
                self.client.delete_collection(self.alias)
            operations: list[Any] = [
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=target, alias_name=self.alias)
                )
            ]
            self.client.update_collection_aliases(change_aliases_operations=operations)
            if live_collection is not None:
                self.client.delete_collection(live_collection)
        self._spec_cache = (0.0, None, None)
        return version

    # --- helpers --------------------------------------------------------------------------------
    def _alias_target(self) -> str | None:
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == self.alias:
                return alias.collection_name
        return None

    def _create_collection(self, name: str, dense_dim: int | None) -> None:
        vectors = (
            {DENSE_VECTOR: models.VectorParams(size=dense_dim, distance=models.Distance.COSINE)}
            if dense_dim
            else {}
        )
        self.client.create_collection(
            name,
            vectors_config=vectors,
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        self.client.create_payload_index(name, "file", models.PayloadSchemaType.KEYWORD)

    def _read_meta(self, collection: str) -> dict[str, Any] | None:
        try:
            records = self.client.retrieve(collection, ids=[_META_ID], with_payload=True)
        except Exception as exc:  # a missing collection: ValueError locally, 404 from a server
            if _is_missing(exc):
                return None
            raise
        payload = records[0].payload if records else None
        return payload.get("__index_meta__") if payload else None

    def _scroll(self, collection: str, flt: models.Filter | None) -> list[IndexHit]:
        hits: list[IndexHit] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                collection, scroll_filter=flt, limit=512, offset=offset, with_payload=True, with_vectors=False
            )
            hits.extend(IndexHit(str(r.id), 0.0, dict(r.payload or {})) for r in records)
            if offset is None:
                return hits


def _matches(vectors: Any, wanted: frozenset[int]) -> frozenset[int]:
    sparse = vectors.get(SPARSE_VECTOR) if isinstance(vectors, dict) else None
    return wanted.intersection(sparse.indices) if sparse is not None else frozenset()


def _is_missing(exc: Exception) -> bool:
    text = str(exc).lower()
    return "not found" in text or getattr(exc, "status_code", None) == 404


def _to_point(point: IndexPoint) -> models.PointStruct:
    vector: dict[str, Any] = {
        SPARSE_VECTOR: models.SparseVector(
            indices=list(point.sparse.indices), values=list(point.sparse.values)
        )
    }
    if point.dense is not None:
        vector[DENSE_VECTOR] = list(point.dense)
    return models.PointStruct(id=point.id, vector=vector, payload=point.payload)


def _files_filter(files: tuple[str, ...] | None) -> models.Filter | None:
    if not files:
        return None
    return models.Filter(must=[models.FieldCondition(key="file", match=models.MatchAny(any=list(files)))])
