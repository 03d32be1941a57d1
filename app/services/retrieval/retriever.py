"""Finding the passages that answer a question: keyword (BM25) and, with embeddings, hybrid."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from app.services.index.base import IndexHit, SearchIndex, SearchRequest
from app.services.retrieval.sparse import Bm25Encoder


class QueryEmbedder(Protocol):
    """Turns a question into a dense vector (Gemini embeddings when configured)."""

    def embed_query(self, text: str) -> list[float]:
        """The question's vector."""
        ...


@dataclass(frozen=True)
class Passage:
    """A retrieved section of the book, as the answerer and the widget see it."""

    file: str
    title: str
    heading: str  # heading path joined with " > "
    anchor: str | None
    url: str
    text: str
    score: float
    similarity: float  # 0..1, comparable within one result list

    def source(self, snippet_chars: int = 200) -> dict[str, Any]:
        """The `sources` entry sent to the widget (file/heading/similarity are its contract)."""
        snippet = " ".join(self.text.split())
        if len(snippet) > snippet_chars:
            snippet = snippet[: snippet_chars - 1].rsplit(" ", 1)[0] + "…"
        return {
            "file": self.file,
            "heading": self.heading,
            "similarity": round(self.similarity, 3),
            "url": self.url,
            "title": self.title,
            "snippet": snippet,
        }


@dataclass(frozen=True)
class RetrievalResult:
    """The passages found, best first, and how long finding them took."""

    passages: list[Passage]
    elapsed_ms: int


class Retriever:
    """Searches the index and shapes hits into passages: one per section, varied across pages."""

    def __init__(
        self,
        index: SearchIndex,
        encoder: Bm25Encoder,
        embedder: QueryEmbedder | None = None,
        *,
        top_k: int = 5,
        per_page: int = 2,
        min_score: float = 0.0,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.embedder = embedder
        self.top_k = top_k
        self.per_page = per_page
        self.min_score = min_score

    def retrieve(self, question: str, *, limit: int | None = None) -> RetrievalResult:
        """The best passages for `question` (empty when nothing in the book matches)."""
        started = time.perf_counter()
        limit = limit or self.top_k
        sparse = self.encoder.query(question)
        dense = self.embedder.embed_query(question) if self.embedder is not None else None
        hits = self.index.search(SearchRequest(sparse=sparse, dense=dense, limit=limit * 4))
        passages = self._shape(hits, limit)
        return RetrievalResult(passages, int((time.perf_counter() - started) * 1000))

    def _shape(self, hits: list[IndexHit], limit: int) -> list[Passage]:
        if not hits:
            return []
        top = hits[0].score or 1.0
        seen_sections: set[tuple[str, str | None]] = set()
        per_page: dict[str, int] = {}
        passages: list[Passage] = []
        for hit in hits:
            if hit.score <= self.min_score:
                continue
            payload = hit.payload
            section = (payload.get("file", ""), payload.get("anchor"))
            # A long section is several chunks; the reader wants the section once.
            if section in seen_sections or per_page.get(section[0], 0) >= self.per_page:
                continue
            seen_sections.add(section)
            per_page[section[0]] = per_page.get(section[0], 0) + 1
            passages.append(_passage(hit, similarity=hit.score / top))
            if len(passages) == limit:
                break
        return passages


def _passage(hit: IndexHit, similarity: float) -> Passage:
    payload = hit.payload
    return Passage(
        file=payload.get("file", ""),
        title=payload.get("title", ""),
        heading=payload.get("heading", ""),
        anchor=payload.get("anchor"),
        url=payload.get("url", ""),
        text=payload.get("text", ""),
        score=hit.score,
        similarity=max(0.0, min(1.0, similarity)),
    )
