"""Finding the passages that answer a question: keyword (BM25) and, with embeddings, hybrid."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from app.services.errors import ServiceUnavailable
from app.services.index.base import IndexHit, SearchIndex, SearchRequest
from app.services.retrieval.current_page import page_key, prefer_current, same_page
from app.services.retrieval.floor import FloorVerdict, RelevanceFloor, TermStatistics
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

    def source(self) -> dict[str, Any]:
        """The `sources` entry sent to the widget (file/heading/similarity are its contract), but
        its `snippet`, which the answer's shaper adds as plain text (answering/shaping.py)."""
        return {
            "file": self.file,
            "heading": self.heading,
            "similarity": round(self.similarity, 3),
            "url": self.url,
            "title": self.title,
        }


@dataclass(frozen=True)
class RetrievalResult:
    """The passages found, best first, and how long finding them took.

    `verdict` is the relevance floor's judgement of the (first covered) query; no passages and a
    verdict that is not `covered` mean the book does not cover the question.
    """

    passages: list[Passage]
    elapsed_ms: int
    verdict: FloorVerdict | None = None


# Passages per answer (and `sources`): five sections from up to three pages cover what a question
# needs; more dilute the prompt and the extractive answer. Calibrated with the relevance floor.
TOP_K = 5
# What ranking reads of each of the 100 candidates; the text and the rest of the payload are
# fetched for the passages returned only. Copying whole payloads (a section's text, its heading
# path, ...) of every candidate was a third of a search's CPU (bench/README.md, "CPU per answer").
RANKING_FIELDS = ("file", "anchor", "part", "url", "code")
# A long section is indexed in parts; the passage given to the answerer is the part found plus its
# neighbours among the candidates, up to this many: "Options" whose command sits in part 2 is
# answered with the command (bench/README.md, "Answers a reader can act on").
SECTION_PARTS = 3


class Retriever:
    """Searches the index and shapes hits into passages, ranking pages by all their evidence.

    A page is ranked by its best section plus a share of its next best ones: a question is
    usually answered by a page that matches it in several places, not by one stray section of
    a long reference page. Within the ranked pages, each section appears once (a long section is
    several chunks) and each page at most `per_page` times, so the answer sees several pages.
    A page whose best section holds no code has its best section with code next: "Add X" is
    matched best by a page's intro, and answered by its command or example configuration.
    """

    def __init__(
        self,
        index: SearchIndex,
        encoder: Bm25Encoder,
        embedder: QueryEmbedder | None = None,
        *,
        top_k: int = TOP_K,
        per_page: int = 2,
        candidates: int = 100,
        page_evidence_sections: int = 3,
        page_evidence_weight: float = 0.7,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.embedder = embedder
        self.top_k = top_k
        self.per_page = per_page
        self.candidates = candidates
        self.page_evidence_sections = page_evidence_sections
        self.page_evidence_weight = page_evidence_weight
        self.floor = RelevanceFloor(encoder.analyzer)
        self._stats_lock = threading.Lock()
        self._stats: tuple[str | None, TermStatistics] | None = None

    def retrieve(
        self,
        question: str,
        *,
        limit: int | None = None,
        alternatives: Sequence[str] = (),
        page: str | None = None,
    ) -> RetrievalResult:
        """The best passages for `question` (empty when the book does not cover it).

        `alternatives` are other wordings of the same need (a follow-up's fallback query): each
        query that passes the floor contributes, and their results are fused by rank (RRF), so a
        poor wording cannot sink a good one. `page` is the URL or path of the page the reader is
        on: when it is one of the candidates' pages and within reach of the best, it comes first
        (`prefer_current`; an unknown page changes nothing; a refused question stays refused).
        """
        started = time.perf_counter()
        limit = limit or self.top_k
        ranked: list[list[IndexHit]] = []
        verdict: FloorVerdict | None = None
        for query in dict.fromkeys([question, *alternatives]):
            query_verdict, hits = self._search(query, limit)
            if verdict is None or (query_verdict.covered and not verdict.covered):
                verdict = query_verdict
            if hits:
                ranked.append(hits)
        hits = ranked[0] if len(ranked) == 1 else _fuse(ranked)
        current = page_key(page) if page else None
        passages = self._passages(self._shape(hits, limit, current), hits) if hits else []
        return RetrievalResult(passages, int((time.perf_counter() - started) * 1000), verdict)

    def _search(self, query: str, limit: int) -> tuple[FloorVerdict, list[IndexHit]]:
        # The floor always judges a keyword-only query: its evidence is on BM25's scale, which
        # the book fixes, whatever embedding model ranks the passages.
        sparse = self.encoder.query(query)
        if not sparse:
            return FloorVerdict(False), []
        keyword = self.index.search(
            SearchRequest(sparse=sparse, limit=max(self.candidates, limit), fields=RANKING_FIELDS)
        )
        verdict = self.floor.judge(query, keyword, self._term_statistics(), self.index.matching_terms)
        if not verdict.covered:
            return verdict, []
        dense = self._embed(query)
        if dense is None:
            return verdict, keyword
        return verdict, self.index.search(
            SearchRequest(
                sparse=sparse, dense=dense, limit=max(self.candidates, limit), fields=RANKING_FIELDS
            )
        )

    def warm(self) -> int | None:
        """Count the live book's terms now (start-up), so no reader's question waits for the scan;
        the number of distinct terms, or None when the index cannot be read yet."""
        try:
            return len(self._term_statistics().frequencies)
        except Exception as exc:  # noqa: BLE001 - health reports an unreachable index, not start-up
            log.warning("could not count the book's terms yet: %s", type(exc).__name__)
            return None

    def book_idf(self) -> Callable[[str], float] | None:
        """The live book's IDF of a term (what the relevance floor weighs words by), or None when
        the index cannot be read: the offline answerer weighs a question's words by it."""
        try:
            stats = self._term_statistics()
        except Exception as exc:  # noqa: BLE001 - the answerer falls back to its passages' own IDF
            log.debug("book term statistics unavailable: %s", type(exc).__name__)
            return None
        # A word the book never uses can be matched by no passage: it weighs nothing in an answer
        # (the floor, which judges coverage, still weighs it most).
        return lambda term: stats.idf(term) if stats.known(term) else 0.0

    def _term_statistics(self) -> TermStatistics:
        """The live book's term statistics, counted once per index version (a scan of its vectors)."""
        version = self.index.version()
        cached = self._stats
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._stats_lock:
            cached = self._stats
            if cached is None or cached[0] != version:
                cached = self._stats = (version, TermStatistics(*self.index.term_frequencies()))
            return cached[1]

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

    def _shape(
        self, hits: list[IndexHit], limit: int, current: tuple[str, str] | None = None
    ) -> list[tuple[IndexHit, float]]:
        """The hits to answer from, best page first, each with its page's score relative to the best."""
        by_page: dict[str, list[IndexHit]] = {}
        for hit in hits:
            by_page.setdefault(hit.payload.get("file", ""), []).append(hit)
        page_score = {
            page: page_hits[0].score
            + self.page_evidence_weight * sum(h.score for h in page_hits[1 : self.page_evidence_sections])
            for page, page_hits in by_page.items()
        }
        if current is not None:
            on = [
                p
                for p, page_hits in by_page.items()
                if same_page(page_hits[0].payload.get("url", ""), current)
            ]
            page_score = prefer_current(page_score, on[0] if on else None)
        top = max(page_score.values())
        chosen: list[tuple[IndexHit, float]] = []
        for page in sorted(by_page, key=lambda p: -page_score[p]):
            seen_sections: set[str | None] = set()
            page_hits = _with_code_second(by_page[page])
            for hit in page_hits:
                anchor = hit.payload.get("anchor")
                if anchor in seen_sections:
                    continue
                seen_sections.add(anchor)
                chosen.append((hit, page_score[page] / top))
                if len(chosen) == limit:
                    return chosen
                if len(seen_sections) == self.per_page:
                    break
        return chosen

    def _passages(self, chosen: list[tuple[IndexHit, float]], candidates: list[IndexHit]) -> list[Passage]:
        # One fetch of the chosen sections' whole payloads (with their neighbouring parts); a
        # section gone since the search (a re-index went live in between) is left out.
        parts = {hit.id: _neighbour_parts(hit, candidates) for hit, _ in chosen}
        payloads = self.index.payloads([part.id for ids in parts.values() for part in ids])
        passages = []
        for hit, similarity in chosen:
            if hit.id not in payloads:
                continue
            passage = _passage(IndexHit(hit.id, hit.score, payloads[hit.id]), similarity)
            texts = [payloads[part.id].get("text", "") for part in parts[hit.id] if part.id in payloads]
            if len(texts) > 1:
                passage = replace(passage, text=_joined_parts(texts))
            passages.append(passage)
        return passages


def _with_code_second(hits: list[IndexHit]) -> list[IndexHit]:
    """A page's hits, best first, but with its best section holding code second when the best
    one holds none: the page's how-to (its command, its example configuration) beside its intro."""
    if not hits or hits[0].payload.get("code"):
        return hits
    first_anchor = hits[0].payload.get("anchor")
    coded = next(
        (h for h in hits[1:] if h.payload.get("code") and h.payload.get("anchor") != first_anchor), None
    )
    if coded is None:
        return hits
    return [hits[0], coded] + [h for h in hits[1:] if h is not coded]


def _neighbour_parts(hit: IndexHit, candidates: list[IndexHit]) -> list[IndexHit]:
    """The hit and the parts of its section next to it among the candidates, in order."""
    file, anchor = hit.payload.get("file"), hit.payload.get("anchor")
    by_part = {
        c.payload.get("part", 0): c
        for c in candidates
        if c.payload.get("file") == file and c.payload.get("anchor") == anchor
    }
    found = hit.payload.get("part", 0)
    by_part[found] = hit
    low = high = found
    while high - low + 1 < SECTION_PARTS:
        if high + 1 in by_part:
            high += 1
        elif low - 1 in by_part:
            low -= 1
        else:
            break
    return [by_part[k] for k in range(low, high + 1)]


def _joined_parts(texts: list[str]) -> str:
    """A section's parts as one text: a part's leading overlap (the end of the part before it,
    repeated so a cut sentence is still found) is left out."""
    joined = texts[0]
    for text in texts[1:]:
        head, _, rest = text.partition("\n\n")
        joined += "\n\n" + (
            rest if rest and head.strip() and joined.rstrip().endswith(head.strip()) else text
        )
    return joined


def _fuse(ranked: list[list[IndexHit]], k: int = 60) -> list[IndexHit]:
    """Reciprocal rank fusion of several result lists (k = 60, as Qdrant's RRF)."""
    scores: dict[str, float] = {}
    first: dict[str, IndexHit] = {}
    for hits in ranked:
        for rank, hit in enumerate(hits):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank + 1)
            first.setdefault(hit.id, hit)
    order = sorted(scores, key=lambda i: -scores[i])
    return [IndexHit(i, scores[i], first[i].payload) for i in order]


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
