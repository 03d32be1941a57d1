"""The relevance floor: does the book plausibly answer a question at all?

Decided on keyword evidence only, from a keyword-only query, in both modes: BM25 and IDF are
properties of the book, while cosine similarities are properties of one embedding model (a floor
tuned on one model's scale is no value for another's). Embeddings only help rank what passes.

The evidence, per question:
- its informative terms, each weighted by IDF over the book's sections (a word the book never
  uses weighs most; "use", "docs", "add" weigh little because the book uses them everywhere);
- **share**: the largest part of that weight that one page holds (a page among those of the best
  keyword hits; the page, not one section, since readers' questions name a topic and its details);
- **strength**: the best section's BM25 score over the question's weight (a term matched in a
  heading, or with its neighbour as a word pair, counts more than a stray word in body text).

Off-topic questions that share a word or two with the book ("calories in a banana": the book's
tabs example has a banana) lose on share, since the words the book lacks weigh most. Constants
live in `sparse.py`, next to the field weights and BM25 parameters whose scale they depend on.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.services.index.base import IndexHit
from app.services.retrieval import sparse
from app.services.retrieval.sparse import CJK_CHARS, Analyzer, term_id, weighted_fields

# Of these term ids, those each of these sections holds, by hit id (the index's own terms:
# SearchIndex.matching_terms). Without it, the floor analyses each candidate's payload text.
TermsOf = Callable[[list[str], frozenset[int]], Mapping[str, frozenset[int]]]

_CJK_CHAR = re.compile(rf"[{CJK_CHARS}]")


def searchable_text(payload: dict[str, Any]) -> str:
    """Every field a section is found by (sparse.weighted_fields), as one text."""
    fields = weighted_fields(
        text=str(payload.get("text") or ""),
        heading_path=payload.get("heading_path") or ["", str(payload.get("heading") or "")],
        title=str(payload.get("title") or ""),
        description=str(payload.get("description") or ""),
        route=str(payload.get("route") or ""),
    )
    return " ".join(text for text, _ in fields)


class TermStatistics:
    """How many of the book's sections hold each term (what Qdrant's IDF is computed from)."""

    def __init__(self, sections: int, frequencies: dict[int, int]) -> None:
        self.sections = sections
        self.frequencies = frequencies  # keyword term id (sparse.term_id) → sections

    @classmethod
    def of_texts(cls, texts: Iterable[str], analyzer: Analyzer) -> TermStatistics:
        """Statistics of a book given the searchable text of each section (for tests and tools)."""
        frequencies: Counter[int] = Counter()
        sections = 0
        for text in texts:
            sections += 1
            frequencies.update({term_id(t) for t in analyzer.terms(text)})
        return cls(sections, dict(frequencies))

    def known(self, term: str) -> bool:
        """Whether the book uses the term at all."""
        return term_id(term) in self.frequencies

    def idf(self, term: str) -> float:
        """BM25's IDF, as Qdrant computes it (a term the book never uses gets the most)."""
        n = self.frequencies.get(term_id(term), 0)
        return math.log((self.sections - n + 0.5) / (n + 0.5) + 1)


@dataclass(frozen=True)
class FloorVerdict:
    """The floor's decision and the evidence it rests on (bench/eval_retrieval.py prints it)."""

    covered: bool
    share: float = 0.0
    strength: float = 0.0
    terms: int = 0
    foreign: bool = False
    page: str | None = None


class RelevanceFloor:
    """Judges keyword hits against a question (stateless: the book's statistics are passed in)."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer

    def judge(
        self, question: str, hits: Sequence[IndexHit], stats: TermStatistics, terms_of: TermsOf | None = None
    ) -> FloorVerdict:
        """Whether keyword `hits` (best first, from a keyword-only query) cover `question`."""
        if not hits:
            return FloorVerdict(False)
        generic = _generic_terms(self.analyzer)
        # An everyday word the book never uses ("should" in a small book) is no sign of another
        # topic: only words that name something do that.
        terms = [
            t
            for t in _readable(list(dict.fromkeys(self.analyzer.terms(question))), stats)
            if stats.known(t) or t not in generic
        ]
        if not terms:
            return FloorVerdict(False)
        unknown = [t for t in terms if not stats.known(t)]
        foreign = len(terms) >= sparse.FLOOR_LONG_QUESTION_TERMS and len(
            unknown
        ) >= sparse.FLOOR_FOREIGN_UNKNOWN_SHARE * len(terms)
        if foreign:
            terms = [t for t in terms if stats.known(t)]
            if not terms:
                return FloorVerdict(False, foreign=True)
        weights = {t: stats.idf(t) for t in terms}
        total = sum(weights.values())
        page, matched = self._best_page(terms, weights, hits, terms_of)
        share = sum(weights[t] for t in matched) / total
        strength = hits[0].score / total
        if foreign:
            specific = [t for t in matched if t not in generic]
            covered = len(specific) >= sparse.FLOOR_FOREIGN_MIN_MATCHED and _passes(
                share, strength, len(terms)
            )
        else:
            covered = _passes(share, strength, len(terms))
        return FloorVerdict(covered, round(share, 3), round(strength, 3), len(terms), foreign, page)

    def _best_page(
        self, terms: list[str], weights: dict[str, float], hits: Sequence[IndexHit], terms_of: TermsOf | None
    ) -> tuple[str | None, set[str]]:
        pages: list[str] = []
        for hit in hits:
            page = hit.payload.get("file", "")
            if page not in pages:
                pages.append(page)
            if len(pages) == sparse.FLOOR_PAGES:
                break
        ids = {term_id(t): t for t in terms}
        found: dict[str, set[str]] = {page: set() for page in pages}
        # Every candidate section of those pages: a page answers as a whole.
        sections = [hit for hit in hits if hit.payload.get("file", "") in found]
        held = terms_of([hit.id for hit in sections], frozenset(ids)) if terms_of is not None else None
        for hit in sections:
            section_terms = (
                held.get(hit.id, frozenset())
                if held is not None
                else self._analyzed(searchable_text(hit.payload))
            )
            found[hit.payload.get("file", "")].update(ids[i] for i in ids.keys() & section_terms)
        best = max(pages, key=lambda p: sum(weights[t] for t in found[p]))
        return best, found[best]

    def _analyzed(self, text: str) -> frozenset[int]:
        return frozenset(term_id(t) for t in self.analyzer.terms(text))


def _passes(share: float, strength: float, terms: int) -> bool:
    if terms >= sparse.FLOOR_LONG_QUESTION_TERMS:
        return share >= sparse.FLOOR_MIN_SHARE_LONG and strength >= sparse.FLOOR_MIN_STRENGTH_LONG
    return share >= sparse.FLOOR_MIN_SHARE_SHORT and strength >= sparse.FLOOR_MIN_STRENGTH_SHORT


def _readable(terms: list[str], stats: TermStatistics) -> list[str]:
    # Chinese/Japanese/Korean character pairs the book mostly lacks mean the book is not written
    # in that language: they say nothing about the topic, while the question's Latin words
    # ("Blog", an identifier) do. A book in that language knows most of them, and they count.
    cjk = [t for t in terms if _CJK_CHAR.search(t)]
    known = sum(1 for t in cjk if stats.known(t))
    if not cjk or known >= sparse.FLOOR_MINOR_SCRIPT_KNOWN * len(cjk):
        return terms
    return [t for t in terms if stats.known(t) or not _CJK_CHAR.search(t)]


@lru_cache(maxsize=4)
def _generic_terms(analyzer: Analyzer) -> frozenset[str]:
    return frozenset(t for word in sparse.GENERIC_WORDS for t in analyzer.terms(word))
