"""Keyword vectors: text → stemmed terms → a sparse BM25 vector that Qdrant scores with IDF.

Qdrant's `Modifier.IDF` multiplies each stored value by the term's IDF over the collection, so a
document stores only its saturated term frequency and a query stores 1 per term: the dot product
is then BM25. Terms are hashed to 32-bit ids so the index needs no vocabulary file.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import snowballstemmer

# Word characters without "_" so snake_case splits; digits stay (v2, 404, es2020).
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Han, Hiragana, Katakana and Hangul: written without spaces, so they are indexed as
# overlapping character pairs (as Lucene's CJK analyzer does) and split off from Latin words.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"  # for a [...] class
_CJK = re.compile(rf"[{CJK_CHARS}]+")
# Boundaries inside camelCase / PascalCase identifiers: onBrokenLinks → on Broken Links. Not before
# a plural's "s" after an acronym: "URLs" is "url", not "ur" + "ls".
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])(?![A-Z]s\b)")

# Function words that carry no topic (a short list: docs questions lean on "how", "not", "no").
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have i if in into is it its of on or that the
    their then there these they this to was were will with you your we our can do does did
    so than too very just about me my how what why when where which who whom""".split()
)


# How much a word in each field counts, relative to a word of body text. Headings and the page
# title say what a section is about in few words; the description and the route (the words of
# the page's URL, e.g. "api plugins plugin google gtag") name the page as readers know it.
FIELD_WEIGHTS = {"body": 1.0, "heading": 2.0, "title": 2.0, "description": 1.0, "route": 1.0}


def weighted_fields(
    *, text: str, heading_path: Sequence[str], title: str, description: str, route: str
) -> list[tuple[str, float]]:
    """The weighted fields a section is found by: its text, where it sits, and what its page is
    (the page's own title is the path's first heading, so it is left out of the heading field)."""
    return [
        (text, FIELD_WEIGHTS["body"]),
        (" ".join(heading_path[1:]), FIELD_WEIGHTS["heading"]),
        (title, FIELD_WEIGHTS["title"]),
        (description, FIELD_WEIGHTS["description"]),
        (route.replace("/", " ").replace("-", " "), FIELD_WEIGHTS["route"]),
    ]


# A query word's weight grows with its count in the question, saturating as BM25's k3 does:
# (k3 + 1) n / (k3 + n), 1 for a word said once. A long question (a GitHub issue) names its topic
# again and again ("code" in "load code files ... code samples ... reuse code"), while chatter
# words come once. On a plateau: k3 = 1-1.5 lifted MRR and section hit@5 with hit@1 unchanged;
# 2 and more cost hit@1 (bench/README.md, "Answers"). Word pairs keep weight 1: repeating a
# pair is repeating its words.
QUERY_TF_K3 = 1.5

# The relevance floor (app/services/retrieval/floor.py) on the BM25 scale these weights, k1 = 1.2
# and the word pairs make. Calibrated on 47 real questions and 37 off-topic ones against the
# Docusaurus docs (bench/README.md, "Relevance floor"); real questions won where the two met.
# Pages judged: those of the best few keyword hits.
FLOOR_PAGES = 5
# A question of this many informative terms or more is "long" (a GitHub issue, not a query):
# it carries chatter, so a smaller share of it on one page is enough.
FLOOR_LONG_QUESTION_TERMS = 8
# Share of the question's IDF mass that one page must hold: long questions, short ones.
FLOOR_MIN_SHARE_LONG = 0.3
FLOOR_MIN_SHARE_SHORT = 0.45
# And a strong enough section: the best BM25 score / the question's IDF mass. A term matched once
# in body text scores about its IDF; in a heading or title, or with its neighbour as a word pair,
# more. Off-topic questions that share a word or two with the book score less.
FLOOR_MIN_STRENGTH_LONG = 0.25
FLOOR_MIN_STRENGTH_SHORT = 0.8
# A long question mostly in words the book never uses is in another language: it is judged on the
# words it shares with the book, of which this many must be specific (not GENERIC_WORDS).
FLOOR_FOREIGN_UNKNOWN_SHARE = 0.6
FLOOR_FOREIGN_MIN_MATCHED = 3
# A question's Chinese/Japanese/Korean character pairs, when the book knows fewer than this share
# of them, tell nothing about its topic: the book is not written in that language.
FLOOR_MINOR_SCRIPT_KNOWN = 0.5

# Everyday words that say little about a topic ("make", "could", "good"): unknown to the book, they
# are no sign of another topic; known, they are no evidence that a foreign-language question is
# about the book.
GENERIC_WORDS = frozenset(
    """many much more most some any all every each other another such same new old good best better
    bad big small little long short first last next own way thing things lot lots want need like get
    got make makes made take give go come know think see look find try tell ask let put keep say help
    thank thanks please hi hello would could should may might must shall also only even still already
    yet again now always never sometimes often really actually maybe perhaps not no yes one two three
    well right wrong able possible while since because very quite""".split()
)


@dataclass(frozen=True)
class SparseVector:
    """Parallel lists of term ids and weights, as Qdrant takes them."""

    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


class Analyzer:
    """Splits text into lower-case stemmed terms; identifiers also yield their parts."""

    def __init__(self, language: str = "english") -> None:
        self._language = language
        # A snowball stemmer keeps state while it works: one per thread, or concurrent chats
        # corrupt each other's words (seen as IndexError under load).
        self._local = threading.local()

    def terms(self, text: str) -> list[str]:
        """The index terms of `text`, in order, with repeats (term frequency matters)."""
        out: list[str] = []
        for run in _CJK.findall(text):
            out.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
        for word in _WORD.findall(_CJK.sub(" ", text)):
            parts = _CAMEL.split(word)
            if len(parts) > 1:
                # Keep the whole identifier (exact-match evidence) and its parts (topic words).
                out.append(word.lower())
            for part in parts:
                term = part.lower()
                if term in STOPWORDS or (len(term) == 1 and not term.isdigit()):
                    continue
                out.append(self._stem(term))
        return out

    @lru_cache(maxsize=65536)  # noqa: B019 - one analyzer per process; the cache is the point
    def _stem(self, term: str) -> str:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = snowballstemmer.stemmer(self._language)
        return str(stemmer.stemWord(term))


def term_id(term: str) -> int:
    """A stable 32-bit id for a term (collisions are rare enough not to matter for ranking)."""
    return zlib.crc32(term.encode("utf-8"))


class Bm25Encoder:
    """Builds document and query vectors for BM25 with IDF applied by Qdrant.

    Documents are made of weighted fields (body, headings, title ...): a term's frequency is the
    weighted sum of its occurrences, then saturated with k1 and normalised by length with b.
    Adjacent term pairs are indexed too ("navbar logo", "google analytics"): a cheap phrase
    signal that lets a question naming a feature in two words prefer the section that does.
    """

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        avgdl: float = 150,
        bigrams: bool = True,
    ) -> None:
        self.analyzer = analyzer or Analyzer()
        self.k1 = k1
        self.b = b
        self.avgdl = avgdl
        self.bigrams = bigrams

    def index_terms(self, text: str) -> tuple[list[str], list[str]]:
        """(terms, adjacent pairs) of a text; only terms count towards its length."""
        terms = self.analyzer.terms(text)
        pairs = [f"{a} {b}" for a, b in pairwise(terms)] if self.bigrams else []
        return terms, pairs

    def document(self, fields: Iterable[tuple[str, float]]) -> SparseVector:
        """The vector of a document given (text, weight) fields."""
        frequencies: dict[str, float] = {}
        length = 0.0
        for text, weight in fields:
            if not text or weight <= 0:
                continue
            terms, pairs = self.index_terms(text)
            length += len(terms) * weight
            for term in terms + pairs:
                frequencies[term] = frequencies.get(term, 0.0) + weight
        norm = self.k1 * (1 - self.b + self.b * length / self.avgdl)
        weights: dict[int, float] = {}
        for term, tf in frequencies.items():
            # Two terms hashing alike simply add up; harmless at this vocabulary size.
            tid = term_id(term)
            weights[tid] = weights.get(tid, 0.0) + tf * (self.k1 + 1) / (tf + norm)
        return _as_vector(weights)

    def query(self, text: str) -> SparseVector:
        """The vector of a query: each distinct term weighted by its saturated count in the
        question (QUERY_TF_K3), each pair once (Qdrant adds the IDF)."""
        terms, pairs = self.index_terms(text)
        k3 = QUERY_TF_K3
        weights = {term_id(pair): 1.0 for pair in pairs}
        weights.update({term_id(term): (k3 + 1) * n / (k3 + n) for term, n in Counter(terms).items()})
        return _as_vector(weights)


def _as_vector(weights: dict[int, float]) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(indices=indices, values=[float(weights[i]) for i in indices])
