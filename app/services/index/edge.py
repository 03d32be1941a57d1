"""The embedded index: Qdrant's in-process engine (`qdrant-edge-py`), shared by every worker.

Layout under the index folder of one collection:

    CURRENT                 the live version's name (replaced atomically with os.replace)
    versions/<name>/shard/  an Edge shard, written once and never changed afterwards
    versions/<name>/manifest.json

Why versions: an Edge shard opened with its write-ahead log takes a lock, so two gunicorn workers
cannot both open it. A shard built with the WAL off and never written again can be opened by any
number of processes. So every write makes a new version (a copy of the live one plus the change,
or a fresh one for a full rebuild) and then moves the CURRENT pointer; readers notice the pointer
within a second and switch without a restart. That is also the zero-downtime rebuild.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from filelock import FileLock

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

_KEEP_VERSIONS = 3  # the live one plus two older ones that a slow reader may still hold
_UPSERT_BATCH = 256
RRF_K = 60  # the constant of the RRF paper and of Qdrant server's default


def _edge_config(dense_dim: int | None) -> qe.EdgeConfig:
    vectors = {}
    if dense_dim:
        # Cold: the vectors' file is paged in as searches read it. The default (Cached) loads the
        # whole preallocated file (32 MB for a few hundred vectors, mostly zeros) into every
        # worker's resident memory (bench/README.md, "CPU per answer": RSS).
        vectors[DENSE_VECTOR] = qe.EdgeVectorParams(
            size=dense_dim, distance=qe.Distance.Cosine, memory=qe.Memory.Cold
        )
    return qe.EdgeConfig(
        vectors=vectors,
        sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        # No WAL: no lock, so every worker can open the (never again written) shard.
        wal_enabled=False,
        # One search thread: the pool splits one query's per-segment reads across threads, and a
        # book is a segment or two, so the default pool (one thread per CPU) only added hand-offs:
        # a keyword search of 100 candidates cost 2.9 ms of CPU with it and 1.6 ms with one thread
        # (bench/README.md, "Third pass"). Queries still run in parallel from request threads.
        max_search_threads=1,
    )


def _to_edge_sparse(vector: Any) -> qe.SparseVector:
    return qe.SparseVector(indices=list(vector.indices), values=list(vector.values))


class _Version:
    """One opened, read-only version."""

    def __init__(self, root: Path, name: str) -> None:
        folder = root / "versions" / name
        self.name = name
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.shard = qe.EdgeShard.load(str(folder / "shard"))
        self._fields: dict[tuple[str, ...], dict[Any, tuple[str, dict[str, Any]]]] = {}
        self._fields_lock = threading.Lock()

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(dense_dim=self.manifest.get("dense_dim"), meta=self.manifest.get("meta", {}))

    def term_frequencies(self) -> tuple[int, dict[int, int]]:
        # A scan of the version's sparse vectors; the retriever keeps the result per version.
        return _count_terms(self.shard)

    def fields(self, names: tuple[str, ...]) -> dict[Any, tuple[str, dict[str, Any]]]:
        """Edge's point id → (id, {name: value}) of every point, read once per set of names.

        Searches ask for a few small fields of 100 candidates (the ranking's file and anchor);
        reading them from the shard's payload storage on every search was most of a search's
        CPU, and the version never changes. The dicts are shared: callers must not change them.
        """
        table = self._fields.get(names)
        if table is None:
            with self._fields_lock:
                table = self._fields.get(names)
                if table is None:
                    table = self._fields[names] = _read_fields(self.shard, names)
        return table


class EdgeIndex:
    """Read side of the embedded index; follows the CURRENT pointer as ingestion moves it."""

    def __init__(self, root: Path, recheck_seconds: float = 1.0) -> None:
        self.root = root
        self._recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._live: _Version | None = None
        self._checked_at = 0.0

    # --- the read API ------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[IndexHit]:
        """Sparse, dense or hybrid (RRF) search over the live version."""
        live = self._require_live()
        flt = _files_filter(request.files)
        table = None if request.fields is None else live.fields(request.fields)
        payload = table is None
        dense = request.dense if live.spec.dense_dim else None  # a keyword-only version ignores it
        sparse = request.sparse if request.sparse else None
        if dense is not None and sparse:
            query = qe.QueryRequest(
                limit=request.limit,
                prefetches=[
                    qe.Prefetch(
                        limit=request.prefetch_limit,
                        query=qe.Query.Nearest(list(dense), using=DENSE_VECTOR),
                        filter=flt,
                    ),
                    qe.Prefetch(
                        limit=request.prefetch_limit,
                        query=qe.Query.Nearest(_to_edge_sparse(sparse), using=SPARSE_VECTOR),
                        filter=flt,
                    ),
                ],
                query=qe.Fusion.Rrf(k=RRF_K),  # type: ignore[arg-type]  # the stub's union omits Rrf; the engine takes it
                with_payload=payload,
            )
        elif dense is not None:
            query = qe.QueryRequest(
                limit=request.limit,
                query=qe.Query.Nearest(list(dense), using=DENSE_VECTOR),
                filter=flt,
                with_payload=payload,
            )
        elif sparse:
            query = qe.QueryRequest(
                limit=request.limit,
                query=qe.Query.Nearest(_to_edge_sparse(sparse), using=SPARSE_VECTOR),
                filter=flt,
                with_payload=payload,
            )
        else:
            return []
        points = live.shard.query(query)
        if table is None:
            return [IndexHit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]
        hits = []
        for p in points:
            point_id, fields = table[p.id]
            hits.append(IndexHit(point_id, p.score, fields))
        return hits

    def payloads(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The whole payload of each point still in the live version, by id."""
        records = self._require_live().shard.retrieve(
            [_edge_id(i) for i in ids], with_payload=True, with_vector=False
        )
        return {str(r.id): dict(r.payload or {}) for r in records}

    def matching_terms(self, ids: Sequence[str], wanted: frozenset[int]) -> dict[str, frozenset[int]]:
        """Of `wanted`, the term ids each point's sparse vector holds, by id (points holding none
        are left out): one single-term query per wanted term among those points, in one batch.
        Only ids come back: reading those points' sparse vectors into Python instead made the
        floor cost 1.2-1.9 ms a question, against 0.8-1.2 (bench/README.md, "Third pass")."""
        if not ids or not wanted:
            return {}
        among = qe.Filter(must=[qe.HasIdCondition({_edge_id(i) for i in ids})])
        terms = list(wanted)
        batch = qe.QueryBatchRequest(
            [
                qe.QueryRequest(
                    limit=len(ids),
                    query=qe.Query.Nearest(
                        qe.SparseVector(indices=[term], values=[1.0]), using=SPARSE_VECTOR
                    ),
                    filter=among,
                    with_payload=False,
                )
                for term in terms
            ]
        )
        held: dict[str, set[int]] = {}
        for term, points in zip(terms, self._require_live().shard.query_batch(batch), strict=True):
            for point in points:
                held.setdefault(str(point.id), set()).add(term)
        return {point_id: frozenset(found) for point_id, found in held.items()}

    def scroll(self, files: tuple[str, ...] | None = None) -> list[IndexHit]:
        """Every point (optionally of some files), without vectors."""
        return _scroll_all(self._require_live().shard, _files_filter(files))

    def term_frequencies(self) -> tuple[int, dict[int, int]]:
        """(points, term id → points holding it) of the live version (a scan: callers keep it)."""
        return self._require_live().term_frequencies()

    def count(self) -> int:
        """Points in the live version (0 before the first build)."""
        live = self._current()
        return live.shard.count(qe.CountRequest(exact=True)) if live else 0

    def version(self) -> str | None:
        """The live version's name."""
        live = self._current()
        return live.name if live else None

    def spec(self) -> IndexSpec | None:
        """How the live version was built."""
        live = self._current()
        return live.spec if live else None

    # --- following the pointer -------------------------------------------------------------------
    def refresh(self) -> str | None:
        """Look at the CURRENT pointer now (not within the next second); returns the live version."""
        self._checked_at = 0.0
        return self.version()

    def _require_live(self) -> _Version:
        live = self._current()
        if live is None:
            raise IndexNotReady("the index has not been built yet (run: flask ingest)")
        return live

    def _current(self) -> _Version | None:
        now = time.monotonic()
        if self._live is not None and now - self._checked_at < self._recheck_seconds:
            return self._live
        with self._lock:
            self._checked_at = now
            name = read_pointer(self.root)
            if name is not None and (self._live is None or self._live.name != name):
                # The old version is dropped, not closed: threads mid-query still hold it.
                self._live = _Version(self.root, name)
                log.info("index version %s is live", name)
            return self._live


class EdgeIndexWriter:
    """Write side of the embedded index: every write makes a new version, then moves CURRENT."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def live_hashes(self) -> dict[str, str]:
        """point id → content hash in the live version."""
        name = read_pointer(self.root)
        if name is None:
            return {}
        version = _Version(self.root, name)
        try:
            return {hit.id: hit.payload.get("content_hash", "") for hit in _scroll_all(version.shard, None)}
        finally:
            version.shard.close()

    def live_spec(self) -> IndexSpec | None:
        """How the live version was built, or None."""
        name = read_pointer(self.root)
        if name is None:
            return None
        manifest = json.loads((self.root / "versions" / name / "manifest.json").read_text())
        return IndexSpec(dense_dim=manifest.get("dense_dim"), meta=manifest.get("meta", {}))

    def write(
        self, spec: IndexSpec, upserts: list[IndexPoint], deletes: list[str], *, full: bool
    ) -> str | None:
        """Build the next version (a copy of the live one plus the change, or fresh) and go live."""
        if not full and not upserts and not deletes:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".write.lock")):
            self._clean_staging()
            live = read_pointer(self.root)
            name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
            folder = self.root / "versions" / name
            staging = self.root / "versions" / f".{name}.tmp"
            staging.mkdir(parents=True)
            try:
                if full or live is None:
                    shard = qe.EdgeShard.create(str(staging / "shard"), _edge_config(spec.dense_dim))
                else:
                    shutil.copytree(self.root / "versions" / live / "shard", staging / "shard")
                    shard = qe.EdgeShard.load(str(staging / "shard"))
                try:
                    if deletes:
                        shard.update(qe.UpdateOperation.delete_points([_edge_id(i) for i in deletes]))
                    for start in range(0, len(upserts), _UPSERT_BATCH):
                        batch = upserts[start : start + _UPSERT_BATCH]
                        shard.update(qe.UpdateOperation.upsert_points([_to_edge_point(p) for p in batch]))
                    points = shard.count(qe.CountRequest(exact=True))
                    shard.flush()
                finally:
                    shard.close()
                manifest = {
                    "version": name,
                    "created_at": datetime.now(UTC).isoformat(),
                    "dense_dim": spec.dense_dim,
                    "points": points,
                    "meta": spec.meta,
                }
                (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
                os.replace(staging, folder)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            write_pointer(self.root, name)
            self._prune(keep=name)
            return name

    def _clean_staging(self) -> None:
        # Under the write lock no other writer is at work: a staging folder is what a killed
        # ingest left (kill -9 skips the cleanup below), a copy of the index taking disk space.
        for left in (self.root / "versions").glob(".*.tmp"):
            log.info("removing the staging folder a stopped ingest left: %s", left.name)
            shutil.rmtree(left, ignore_errors=True)

    def _prune(self, keep: str) -> None:
        versions = sorted(p for p in (self.root / "versions").iterdir() if not p.name.startswith("."))
        for old in versions[:-_KEEP_VERSIONS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)


def read_pointer(root: Path) -> str | None:
    """The live version's name, or None."""
    try:
        name = (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def write_pointer(root: Path, name: str) -> None:
    """Point CURRENT at `name` atomically (readers see the old or the new name, never half)."""
    tmp = root / f".CURRENT.{os.getpid()}.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, root / "CURRENT")


def _edge_id(point_id: str) -> Any:
    return point_id  # Edge accepts UUID strings as ids


def _to_edge_point(point: IndexPoint) -> qe.Point:
    vector: dict[str, Any] = {SPARSE_VECTOR: _to_edge_sparse(point.sparse)}
    if point.dense is not None:
        vector[DENSE_VECTOR] = list(point.dense)
    return qe.Point(id=_edge_id(point.id), vector=vector, payload=point.payload)


def _files_filter(files: tuple[str, ...] | None) -> qe.Filter | None:
    if not files:
        return None
    return qe.Filter(must=[qe.FieldCondition(key="file", match=qe.MatchAny(any=list(files)))])


def _scroll_all(shard: qe.EdgeShard, flt: qe.Filter | None) -> list[IndexHit]:
    hits: list[IndexHit] = []
    offset = None
    while True:
        records, offset = shard.scroll(
            qe.ScrollRequest(offset=offset, limit=512, filter=flt, with_payload=True, with_vector=False)
        )
        hits.extend(IndexHit(str(r.id), 0.0, dict(r.payload or {})) for r in records)
        if offset is None:
            break
    return hits


def _read_fields(shard: qe.EdgeShard, names: tuple[str, ...]) -> dict[Any, tuple[str, dict[str, Any]]]:
    table: dict[Any, tuple[str, dict[str, Any]]] = {}
    selector = qe.PayloadSelector.Include(list(names))
    offset = None
    while True:
        records, offset = shard.scroll(
            qe.ScrollRequest(offset=offset, limit=512, with_payload=selector, with_vector=False)
        )
        for record in records:
            table[record.id] = (str(record.id), dict(record.payload or {}))
        if offset is None:
            return table


def _count_terms(shard: qe.EdgeShard) -> tuple[int, dict[int, int]]:
    counts: Counter[int] = Counter()
    points = 0
    offset = None
    while True:
        records, offset = shard.scroll(
            qe.ScrollRequest(offset=offset, limit=512, with_payload=False, with_vector=True)
        )
        for record in records:
            points += 1
            vector = record.vector.get(SPARSE_VECTOR) if isinstance(record.vector, dict) else None
            if isinstance(vector, qe.SparseVector):
                counts.update(vector.indices)
        if offset is None:
            return points, dict(counts)
