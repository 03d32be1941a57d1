"""The answerer that needs no keys: an extractive summary of the best passages, each sentence cited.

It never invents text: every sentence it shows is a whole sentence copied from the book (or from
the reader's selection), so its answers are grounded by construction. How it chooses:

1. Each passage is parsed with markdown-it into blocks; only prose is quoted (paragraphs, and
   list items that are whole sentences). Code, tables, HTML and headings are never quoted; a
   short list introduced by "...:" is folded into its sentence ("options: A, B and C.").
2. Prose is split into sentences, and a sentence is kept only if it reads on its own: it ends
   with a full stop (no dangling "Accepted fields:"), has a few words, and is not cut.
3. Sentences are scored against the question, BM25-style, with the IDF taken from the sentences
   of these passages (a word every sentence has says nothing), the section's own heading
   counted as a field of each of its sentences, and a prior for the passage: its page's
   strength (retrieval's page score relative to the best page's), less for the page's later
   sections; a page under half the best one's score is not quoted.
   Each pick halves the weight of the question words it covered, so the next one adds something,
   and discounts further sentences of its page (MMR-style), so a strong second or third page
   contributes its best sentence instead of a fourth sentence of the first page.
4. For "what is X?", the sentence that defines X ("X is ...", "X, which allows ...") comes first.
5. 2-5 sentences, grouped by passage, each ending with its citation: "... the docs folder [1]."
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace


from app.services.answering.base import AnswerRequest, Usage
from app.services.answering.sentences import (
    Sentence,
    passage_sentences,
)
from app.services.retrieval.retriever import Passage
from app.services.retrieval.sparse import Analyzer

NOT_COVERED = (
    "I couldn't find anything about that in this book. Try rephrasing the question, "
    "or ask about a topic the book covers."
)

# Pause between streamed words: none, the extractive answer is ready at once. Tests that need a
# stream long enough to interrupt set it (monkeypatch, or tests/tuned_wsgi.py for a live service).
TOKEN_DELAY_SECONDS = 0.0
MAX_SENTENCES = 5
MIN_SENTENCES = 2
MAX_ANSWER_CHARS = 900
# A sentence scoring under this share of the best one adds noise, not answer. A second or third
# page's best sentence often scores 0.2-0.35 of the first page's (its prior is its page's lesser
# strength) and is where readers' answers are: 0.1-0.2 is the plateau (bench/README.md, "Answers");
# its middle, not its edge, for questions not seen in calibration (4.2 sentences against 3.0 at 0.35).
KEEP_RATIO = 0.15
# A passage's prior is its page's strength (retrieval's page score / the best page's, the
# `similarity` of the passage) decayed for the page's later sections: 1 / (1 + RANK_DECAY * k).
RANK_DECAY = 0.4
WEAK_PAGE = 0.5  # a page under half the best page's score is not quoted from
PAGE_REPEAT = 0.7  # each sentence already quoted from a page scales that page's next one by this
HEADING_TF = 0.5  # a question word in the section's heading counts as half an occurrence in each sentence
DEFINITION_BONUS = 2.0
BM25_K1, BM25_B = 1.2, 0.5

_PIECE = re.compile(r"\S+\s*|\s+")
_META = re.compile(r"\b(?:this (?:section|page|guide|tutorial|document)|we will|we'll|in the following)\b", re.I)
_POINTS_AWAY = re.compile(r"\b(?:following|below|above|as follows)\b", re.I)
_CONTEXTUAL_START = re.compile(r"^(?:This|That|These|Those|It|They|Then|Also|However|So|Otherwise|And|But|Or|Because)\b")
_WHAT_IS = re.compile(
    r"^\s*(?:what|who)(?:'s|\s+is|\s+are|\s+was|\s+were|\s+does)\s+(?:an?\s+|the\s+)?(?P<subject>.+?)"
    r"(?:\s+(?:mean|do|stand for))?\s*\??\s*$",
    re.IGNORECASE,
)
# Words a question uses to ask rather than to name its topic ("how do I *add* search"): they
# count for little, whatever their rarity among a handful of passages.
_GENERIC = frozenset(
    "add use creat make set get want need work way chang possibl support allow like help show tri "
    "would should could also new pleas know configur doc page site file".split()
)
GENERIC_WEIGHT = 0.3
_DEFINING = r"(?:is|are|means|refers to|lets|allows|permits|enables|provides|which|that)"


class OfflineAnswer:
    """An answer already composed, streamed a word at a time (optionally at a typing pace)."""

    def __init__(self, text: str, delay_seconds: float = 0.0) -> None:
        self.text = text
        self.usage = Usage()
        self._delay = delay_seconds
        self._pieces = iter(_PIECE.findall(text))
        self._started = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        piece = next(self._pieces)
        if self._started and self._delay:
            time.sleep(self._delay)
        self._started = True
        return piece

    def close(self) -> None:
        """Nothing upstream to release."""
        self._pieces = iter(())


class OfflineAnswerer:
    """Extractive answers: the sentences of the best passages that answer the question."""

    name = "offline"
    writes_markdown = False  # it composes the requested format itself

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        *,
        max_passages: int = 5,
        token_delay_seconds: float = 0.0,
    ) -> None:
        self.analyzer = analyzer or Analyzer()
        self.max_passages = max_passages
        self.token_delay_seconds = token_delay_seconds

    def answer(self, request: AnswerRequest) -> OfflineAnswer:
        """Compose the answer text now; it is streamed as the caller iterates."""
        return OfflineAnswer(self.compose(request), self.token_delay_seconds)

    def compose(self, request: AnswerRequest) -> str:
        """The whole answer as text (plain prose, or Markdown with code spans when asked)."""
        markdown = request.format == "markdown"
        parts: list[str] = []
        quoted_already: set[str] = set()
        if request.mode == "selection" and request.selection:
            chosen = self.select(request.question, [request.selection], limit=3)
            quoted_already = {s.text.casefold() for s in chosen}
            source = _source_of(chosen, request.passages[: self.max_passages])
            if source is not None:
                # The selection's sentences are the book's: cite the passage they come from.
                quoted = _cite([replace(s, passage=source) for s in chosen], markdown)
            else:
                quoted = " ".join(s.markdown if markdown else s.text for s in chosen)
            if not quoted:
                quoted = " ".join(request.selection.split())
            parts.append(f"From the passage you selected: {quoted}")
        passages = request.passages[: self.max_passages]
        if not passages:
            return parts[0] if parts else NOT_COVERED
        limit = MAX_SENTENCES - 2 if parts else MAX_SENTENCES
        chosen = self.select(
            request.question,
            [p.text for p in passages],
            headings=[_label(p) for p in passages],
            pages=[p.file for p in passages],
            strengths=[p.similarity for p in passages],
            exclude=quoted_already,
            limit=limit,
        )
        if not chosen:
            parts.append(f"The book covers this in the section {_quoted(_label(passages[0]))} [1].")
            return " ".join(parts)
        parts.append(_cite(chosen, markdown))
        return ("\n\n" if markdown else " ").join(parts)

    # --- choosing sentences ---------------------------------------------------------------------
    def select(
        self,
        question: str,
        texts: list[str],
        *,
        headings: list[str] | None = None,
        pages: list[str] | None = None,
        strengths: list[float] | None = None,
        exclude: set[str] | None = None,
        limit: int = MAX_SENTENCES,
    ) -> list[Sentence]:
        """The sentences of `texts` that best answer `question`, in reading order (definition first);
        sentences in `exclude` (case-folded, e.g. already quoted from the selection) are skipped."""
        candidates: list[Sentence] = []
        seen: set[str] = set(exclude or ())
        for index, text in enumerate(texts):
            for sentence in passage_sentences(text, index):
                key = sentence.text.casefold()
                if key not in seen:
                    seen.add(key)
                    candidates.append(sentence)
        if not candidates:
            return []
        question_terms = Counter(self.analyzer.terms(question))
        sentence_terms = [Counter(self.analyzer.terms(s.text)) for s in candidates]
        idf = _idf(sentence_terms)
        average_length = sum(sum(t.values()) for t in sentence_terms) / len(sentence_terms) or 1.0
        # The section's own heading is a field of every sentence under it (BM25F-style):
        # "Installation" makes its sentences about installing even when they do not repeat the
        # word. The page title above it is left out: it is the same for every section of a page.
        sections = [h.split(" > ")[-1] for h in (headings or [""] * len(texts))]
        heading_terms = [set(self.analyzer.terms(section)) for section in sections]
        subject = self._subject(question)

        weights = {term: idf.get(term, 0.0) * (GENERIC_WEIGHT if term in _GENERIC else 1.0) for term in question_terms}
        page_of = pages or [str(i) for i in range(len(texts))]
        prior = _passage_priors(page_of, strengths or [1.0] * len(texts))
        base = []
        for sentence, terms in zip(candidates, sentence_terms):
            score = prior[sentence.passage]
            if _META.search(sentence.text):
                score *= 0.5
            if _POINTS_AWAY.search(sentence.text):
                score *= 0.35  # it points at an example or list that is not quoted
            if _CONTEXTUAL_START.match(sentence.text):
                score *= 0.8
            if sentence.position == 0:
                score *= 1.1
            if (
                sentence.row_name
                and sentence.row_name != sections[sentence.passage].replace("`", "")
                and not set(self.analyzer.terms(sentence.row_name)) & set(question_terms)
            ):
                # One row of a reference table, not the one the question names. A section that
                # is one row (the book's API tables are indexed a section per row) is not: retrieval
                # chose it for its place in the book ("Navbar dropdown > items").
                score *= 0.4
            base.append(score)

        def relevance(i: int) -> float:
            terms = sentence_terms[i]
            heading = heading_terms[candidates[i].passage]
            length = sum(terms.values()) or 1
            total = 0.0
            for term, weight in weights.items():
                tf = terms.get(term, 0) + (HEADING_TF if term in heading else 0.0)
                if tf:
                    total += weight * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average_length))
            return total * base[i]

        definition = self._definition(subject, candidates, relevance) if subject else None
        chosen: list[int] = [] if definition is None else [definition]
        if definition is not None:
            self._cover(weights, sentence_terms[definition])
        best = None
        budget = sum(len(candidates[i].text) for i in chosen)
        quoted_pages: Counter[str] = Counter(page_of[candidates[i].passage] for i in chosen)
        while len(chosen) < limit:
            scored = [
                (relevance(i) * PAGE_REPEAT ** quoted_pages[page_of[candidates[i].passage]], -i)
                for i in range(len(candidates))
                if i not in chosen
            ]
            if not scored:
                break
            _, negative = max(scored)
            pick = -negative
            # The page discount only orders the picks; whether a sentence is worth quoting at
            # all is judged on its own relevance.
            score = relevance(pick)
            if best is None:
                best = score
            if score <= 0 or (score < KEEP_RATIO * best and len(chosen) >= MIN_SENTENCES):
                break
            if budget + len(candidates[pick].text) > MAX_ANSWER_CHARS and len(chosen) >= MIN_SENTENCES:
                break
            chosen.append(pick)
            quoted_pages[page_of[candidates[pick].passage]] += 1
            budget += len(candidates[pick].text)
            self._cover(weights, sentence_terms[pick])
        if not chosen:
            # No sentence shares a word with the question (another language, other words):
            # retrieval still chose these passages, so open the best one as the book does.
            first = candidates[0].passage
            chosen = [i for i, s in enumerate(candidates) if s.passage == first][:MIN_SENTENCES]
        return _reading_order([candidates[i] for i in chosen], definition_first=definition is not None)

    @staticmethod
    def _subject(question: str) -> re.Pattern[str] | None:
        """For "what is X?": a pattern for X as a sentence names it (plural or -ing forms too)."""
        match = _WHAT_IS.match(question.strip())
        if not match:
            return None
        words = re.findall(r"[\w@/.-]+", match.group("subject"))[:4]
        if not words:
            return None
        stems = [re.escape(word[: max(3, len(word) - 3)]) + r"[\w-]*" for word in words]
        return re.compile(r"\b" + r"\W+".join(stems), re.IGNORECASE)

    @staticmethod
    def _definition(subject: re.Pattern[str], candidates: list[Sentence], relevance) -> int | None:  # noqa: ANN001
        """The best sentence that defines the subject: "X is ...", "X, which allows ...", "called X"."""
        found: list[tuple[float, int]] = []
        for i, sentence in enumerate(candidates):
            text = sentence.text
            for named in subject.finditer(text):
                after = text[named.end() :]
                before = text[: named.start()]
                defines = re.match(rf"(?:\s*\([^)]*\))?,?\s+{_DEFINING}\b", after, re.IGNORECASE)
                called = re.search(r"\b(?:called|named|known as)\s+$", before, re.IGNORECASE)
                if defines or called:
                    opening = 1.5 if re.fullmatch(r"\W*(?:(?:A|An|The|In \w+,)\s+)?", before) else 1.0
                    found.append(((relevance(i) + 1.0) * DEFINITION_BONUS * opening, i))
                    break
        return max(found)[1] if found else None

    @staticmethod
    def _cover(weights: dict[str, float], terms: Counter[str]) -> None:
        for term in terms:
            if term in weights:
                weights[term] *= 0.5


def _passage_priors(pages: list[str], strengths: list[float]) -> list[float]:
    """How much each passage's sentences are worth before reading them: its page's strength
    (retrieval's page score relative to the best page's), decayed for the page's later sections."""
    earlier: Counter[str] = Counter()
    top = max(strengths, default=1.0) or 1.0
    priors = []
    for page, strength in zip(pages, strengths):
        relative = strength / top
        priors.append(0.0 if relative < WEAK_PAGE else relative / (1 + RANK_DECAY * earlier[page]))
        earlier[page] += 1
    return priors


def _source_of(quoted: list[Sentence], passages: list[Passage]) -> int | None:
    """The index of the first passage that holds one of the quoted sentences, if any."""
    wanted = {s.text.casefold() for s in quoted}
    for index, passage in enumerate(passages):
        if wanted & {s.text.casefold() for s in passage_sentences(passage.text, index)}:
            return index
    return None


def _idf(documents: list[Counter[str]]) -> dict[str, float]:
    count = len(documents)
    frequency: Counter[str] = Counter()
    for terms in documents:
        frequency.update(terms.keys())
    return {term: math.log(1 + (count - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}


def _reading_order(chosen: list[Sentence], *, definition_first: bool) -> list[Sentence]:
    """Passages in the order their best sentence was chosen; each passage's sentences in book order."""
    head = chosen[:1] if definition_first else []
    rest = chosen[1:] if definition_first else chosen
    passage_order: list[int] = [s.passage for s in head]
    for sentence in rest:
        if sentence.passage not in passage_order:
            passage_order.append(sentence.passage)
    ordered = list(head)
    for passage in passage_order:
        ordered.extend(sorted((s for s in rest if s.passage == passage), key=lambda s: s.position))
    return ordered


def _cite(sentences: list[Sentence], markdown: bool) -> str:
    """Each sentence with its [n], n the passage's number in the request (1-based).

    Like a model's citations, these name passages; the chat turn's shaper renumbers them in
    order of first appearance and lists exactly those passages as the sources.
    """
    out = []
    for sentence in sentences:
        n = sentence.passage + 1
        text = sentence.markdown if markdown else sentence.text
        out.append(text[:-1] + f" [{n}]." if text.endswith(".") else text + f" [{n}]")
    return " ".join(out)


def _label(passage: Passage) -> str:
    parts = (passage.heading or passage.title or passage.file).split(" > ")
    return " > ".join(parts[-2:])


def _quoted(label: str) -> str:
    return f"“{label}”"
