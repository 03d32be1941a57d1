"""From a Docusaurus docs folder to a live index, writing only what changed.

Each chunk has a stable point id (from its file, anchor and part) and a content hash. Comparing
them with the live index gives what to add, update and remove; only added and updated chunks are
embedded, and an unchanged book writes nothing at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from app.services.index.base import IndexPoint, IndexSpec, IndexWriter, point_id
from app.services.ingestion.chunking import Chunk, chunk_book
from app.services.ingestion.docusaurus import discover_pages, parse_page
from app.services.retrieval.sparse import Bm25Encoder, weighted_fields

log = logging.getLogger(__name__)

EMBED_BATCH = 100  # the embedding API's limit per request; also the progress bar's step
# Bump when the keyword analysis changes: a live index built differently is then rebuilt whole.
SPARSE_SCHEME = "bm25-fields-bigrams-v3"


class DocumentEmbedder(Protocol):
    """Turns chunk texts into dense vectors (Gemini embeddings when configured)."""

    model: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order (batched and retried by the implementation)."""
        ...

    @property
    def requests_made(self) -> int:
        """How many embedding requests this embedder has sent so far."""
        ...


@dataclass
class IngestSummary:
    """What an ingest did; printed as the last line of `flask ingest --json`."""

    files: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedding_requests: int = 0
    version: str | None = None
    full: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return asdict(self)


@dataclass
class IngestPlan:
    """Chunks of the book compared with the live index."""

    chunks: list[Chunk]
    added: list[Chunk] = field(default_factory=list)
    updated: list[Chunk] = field(default_factory=list)
    unchanged: list[Chunk] = field(default_factory=list)
    removed_ids: list[str] = field(default_factory=list)


def document_fields(chunk: Chunk) -> list[tuple[str, float]]:
    """The weighted fields a chunk is found by: its text, where it sits, and what its page is."""
    return weighted_fields(
        text=chunk.text,
        heading_path=chunk.heading_path,
        title=chunk.title,
        description=chunk.description or "",
        route=chunk.route,
    )


def chunk_payload(chunk: Chunk) -> dict[str, Any]:
    """What the index stores beside the vectors, and what sources are built from."""
    return {
        "file": chunk.file,
        "title": chunk.title,
        "heading": chunk.heading,
        "heading_path": list(chunk.heading_path),
        "anchor": chunk.anchor,
        "url": chunk.url,
        "route": chunk.route,
        "text": chunk.text,
        "tokens": chunk.tokens,
        "content_hash": chunk.content_hash,
        "chunk_index": chunk.chunk_index,
        "part": chunk.part,
        "description": chunk.description,
        "code": chunk.holds_code,  # the retriever puts a page's how-to beside its intro
    }


class Ingester:
    """Reads a book, compares it with the live index and writes the difference."""

    def __init__(
        self,
        writer: IndexWriter,
        encoder: Bm25Encoder,
        embedder: DocumentEmbedder | None = None,
    ) -> None:
        self.writer = writer
        self.encoder = encoder
        self.embedder = embedder

    def read_chunks(
        self, docs_dir: Path, *, site_url: str = "", route_base_path: str = "/", show_progress: bool = False
    ) -> tuple[int, list[Chunk]]:
        """Parse the book into chunks; returns (number of pages, chunks)."""
        pages = []
        for path in tqdm(discover_pages(docs_dir), desc="reading", unit="file", disable=not show_progress):
            page = parse_page(docs_dir, path, site_url=site_url, route_base_path=route_base_path)
            if not page.draft:  # Docusaurus leaves drafts out of production builds
                pages.append(page)
        return len(pages), chunk_book(pages)

    def spec(self) -> IndexSpec:
        """How an index built now would be built."""
        meta: dict[str, Any] = {
            "sparse": SPARSE_SCHEME,
            "avgdl": self.encoder.avgdl,
            "k1": self.encoder.k1,
            "b": self.encoder.b,
        }
        if self.embedder is not None:
            meta["embedding_model"] = self.embedder.model
        return IndexSpec(dense_dim=self.embedder.dim if self.embedder else None, meta=meta)

    def plan(self, chunks: list[Chunk], *, full: bool) -> IngestPlan:
        """Sort chunks into added / updated / unchanged, and find what disappeared."""
        plan = IngestPlan(chunks=chunks)
        live = {} if full else self.writer.live_hashes()
        current_ids = set()
        for chunk in chunks:
            pid = point_id(chunk.key)
            current_ids.add(pid)
            if pid not in live:
                plan.added.append(chunk)
            elif live[pid] != chunk.content_hash:
                plan.updated.append(chunk)
            else:
                plan.unchanged.append(chunk)
        plan.removed_ids = sorted(set(live) - current_ids)
        return plan

    def ingest(
        self,
        docs_dir: Path,
        *,
        site_url: str = "",
        route_base_path: str = "/",
        full: bool = False,
        show_progress: bool = False,
    ) -> IngestSummary:
        """Bring the index up to date with the book; a full rebuild switches atomically."""
        files, chunks = self.read_chunks(
            docs_dir, site_url=site_url, route_base_path=route_base_path, show_progress=show_progress
        )
        if not chunks:
            raise ValueError(f"no Docusaurus pages found under {docs_dir}")
        spec = self.spec()
        live_spec = self.writer.live_spec()
        if not full and live_spec is not None and not _same_build(live_spec, spec):
            log.info("the live index was built differently (%s); rebuilding it whole", live_spec.meta)
            full = True
        if full or live_spec is None:
            # Length normalisation is relative to the book's mean chunk length, fixed per build.
            self.encoder.avgdl = _mean_length(self.encoder, chunks)
            spec = self.spec()
        else:
            self.encoder.avgdl = float(live_spec.meta.get("avgdl", self.encoder.avgdl))
            spec = self.spec()
        plan = self.plan(chunks, full=full or live_spec is None)
        to_write = plan.added + plan.updated
        requests_before = self.embedder.requests_made if self.embedder else 0
        vectors = self._embed(to_write, show_progress)
        points = [
            IndexPoint(
                id=point_id(chunk.key),
                sparse=self.encoder.document(document_fields(chunk)),
                payload=chunk_payload(chunk),
                dense=vectors[i] if vectors is not None else None,
            )
            for i, chunk in enumerate(to_write)
        ]
        version = self.writer.write(spec, points, plan.removed_ids, full=full or live_spec is None)
        return IngestSummary(
            files=files,
            chunks=len(chunks),
            added=len(plan.added),
            updated=len(plan.updated),
            removed=len(plan.removed_ids),
            unchanged=len(plan.unchanged),
            embedding_requests=(self.embedder.requests_made - requests_before) if self.embedder else 0,
            version=version,
            full=full or live_spec is None,
        )

    def _embed(self, chunks: list[Chunk], show_progress: bool) -> list[list[float]] | None:
        if self.embedder is None or not chunks:
            return None
        texts = [f"{chunk.heading}\n\n{chunk.text}" for chunk in chunks]
        vectors: list[list[float]] = []
        batches = range(0, len(texts), EMBED_BATCH)
        for start in tqdm(batches, desc="embedding", unit="batch", disable=not show_progress):
            end = start + EMBED_BATCH
            vectors.extend(self.embedder.embed_documents(texts[start:end]))
        return vectors


def _same_build(live: IndexSpec, wanted: IndexSpec) -> bool:
    keys = ("sparse", "embedding_model", "k1", "b")
    return live.dense_dim == wanted.dense_dim and all(live.meta.get(k) == wanted.meta.get(k) for k in keys)


def _mean_length(encoder: Bm25Encoder, chunks: list[Chunk]) -> float:
    total = 0.0
    for chunk in chunks:
        for text, weight in document_fields(chunk):
            total += len(encoder.analyzer.terms(text)) * weight
    return max(1.0, total / len(chunks))
