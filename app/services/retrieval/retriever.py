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
    """Searches the index and shapes hits into passages, ranking pages by all their evidence.

    A page is ranked by its best section plus a share of its next best ones: a question is
    usually answered by a page that matches it in several places, not by one stray section of
    a long reference page. Within the ranked pages, each section appears once (a long section is
    several chunks) and each page at most `per_page` times, so the answer sees several pages.
    """

    def __init__(
        self,
        index: SearchIndex,
        encoder: Bm25Encoder,
        embedder: QueryEmbedder | None = None,
        *,
        top_k: int = 5,
        per_page: int = 2,
        min_score: float = 0.0,
        candidates: int = 100,
        page_evidence_sections: int = 3,
        page_evidence_weight: float = 0.7,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.embedder = embedder
        self.top_k = top_k
        self.per_page = per_page
        self.min_score = min_score
        self.candidates = candidates
        self.page_evidence_sections = page_evidence_sections
        self.page_evidence_weight = page_evidence_weight

    def retrieve(self, question: str, *, limit: int | None = None) -> RetrievalResult:
        """The best passages for `question` (empty when nothing in the book matches)."""
        started = time.perf_counter()
        limit = limit or self.top_k
        sparse = self.encoder.query(question)
        dense = self.embedder.embed_query(question) if self.embedder is not None else None
        hits = self.index.search(SearchRequest(sparse=sparse, dense=dense, limit=max(self.candidates, limit)))
        passages = self._shape(hits, limit)
        return RetrievalResult(passages, int((time.perf_counter() - started) * 1000))

    def _shape(self, hits: list[IndexHit], limit: int) -> list[Passage]:
        if not hits or hits[0].score <= self.min_score:
            return []  # below the relevance floor: the book does not cover this
        by_page: dict[str, list[IndexHit]] = {}
        for hit in hits:
            by_page.setdefault(hit.payload.get("file", ""), []).append(hit)
        page_score = {
            page: page_hits[0].score
            + self.page_evidence_weight * sum(h.score for h in page_hits[1 : self.page_evidence_sections])
            for page, page_hits in by_page.items()
        }
        top = max(page_score.values())
        passages: list[Passage] = []
        for page in sorted(by_page, key=lambda p: -page_score[p]):
            seen_sections: set[str | None] = set()
            for hit in by_page[page]:
                anchor = hit.payload.get("anchor")
                if anchor in seen_sections:
                    continue
                seen_sections.add(anchor)
                passages.append(_passage(hit, similarity=page_score[page] / top))
                if len(passages) == limit:
                    return passages
                if len(seen_sections) == self.per_page:
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
