"""Finding the passages that answer a question: keyword (BM25) and, with embeddings, hybrid."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from app.services.errors import ServiceUnavailable
from app.services.index.base import IndexHit, SearchIndex, SearchRequest
from app.services.retrieval.sparse import Bm25Encoder


log = logging.getLogger(__name__)


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
        min_coverage: float = 0.6,
        strong_score: float = 9.0,
        min_similarity: float = 0.6,
        candidates: int = 100,
        page_evidence_sections: int = 3,
        page_evidence_weight: float = 0.7,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.embedder = embedder
        self.top_k = top_k
        self.per_page = per_page
        self.min_coverage = min_coverage
        self.strong_score = strong_score
        self.min_similarity = min_similarity
        self.candidates = candidates
        self.page_evidence_sections = page_evidence_sections
        self.page_evidence_weight = page_evidence_weight

    def retrieve(self, question: str, *, limit: int | None = None) -> RetrievalResult:
        """The best passages for `question` (empty when nothing in the book matches)."""
        started = time.perf_counter()
        limit = limit or self.top_k
        sparse = self.encoder.query(question)
        dense = self._embed(question)
        hits = self.index.search(SearchRequest(sparse=sparse, dense=dense, limit=max(self.candidates, limit)))
        covered = self._covered(question, hits, dense)
        passages = self._shape(hits, limit) if covered else []
        return RetrievalResult(passages, int((time.perf_counter() - started) * 1000))

    def _embed(self, question: str) -> list[float] | None:
        """The question's vector when the live index has dense vectors; None otherwise."""
        if self.embedder is None:
            return None
        spec = self.index.spec()
        if spec is None or not spec.dense_dim:
            return None  # a keyword-only index: an embedding would cost a call for nothing
        try:
            return self.embedder.embed_query(question)
        except ServiceUnavailable as exc:
            # Keyword retrieval still works: degrade, don't fail the reader's question.
            log.warning("query embedding unavailable (%s); keyword retrieval only", exc.code)
            return None

    def locate(self, selection: str, neighbours: int = 1) -> list[Passage]:
        """Where a selected passage comes from: its best-matching chunk, then its neighbours."""
        hits = self.index.search(SearchRequest(sparse=self.encoder.query(selection[:2000]), limit=1))
        if not hits:
            return []
        best = hits[0]
        file, position = best.payload.get("file", ""), best.payload.get("chunk_index", 0)
        nearby = [
            hit
            for hit in self.index.scroll(files=(file,))
            if hit.id != best.id and abs(hit.payload.get("chunk_index", 0) - position) <= neighbours
        ]
        nearby.sort(key=lambda hit: hit.payload.get("chunk_index", 0))
        return [_passage(best, similarity=1.0)] + [_passage(hit, similarity=0.5) for hit in nearby]

    def _covered(self, question: str, hits: list[IndexHit], dense: list[float] | None) -> bool:
        """The relevance floor: does the book plausibly answer this at all?

        Keyword evidence: the match is strong, or most of the question's words appear in one of
        the best sections (off-topic questions, "give me a pancake recipe", match a word or two
        by chance). With embeddings, a close enough section (cosine) also counts, so a question
        worded unlike the book still gets through.
        """
        if not hits:
            return False
        if dense is None and hits[0].score >= self.strong_score:
            return True  # a raw BM25 score; fused (RRF) scores are ranks, not evidence
        if self._word_coverage(question, hits[:3]) >= self.min_coverage:
            return True
        if dense is not None:
            nearest = self.index.search(SearchRequest(sparse=None, dense=dense, limit=1))
            return bool(nearest) and nearest[0].score >= self.min_similarity
        return False

    def _word_coverage(self, question: str, hits: list[IndexHit]) -> float:
        """The largest share of the question's terms found in one of `hits`."""
        question_terms = set(self.encoder.analyzer.terms(question))
        if not question_terms:
            return 0.0
        best = 0.0
        for hit in hits:
            p = hit.payload
            fields = " ".join(str(p.get(k) or "") for k in ("text", "heading", "title", "description", "route"))
            best = max(best, len(question_terms & set(self.encoder.analyzer.terms(fields))) / len(question_terms))
        return best

    def _shape(self, hits: list[IndexHit], limit: int) -> list[Passage]:
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
