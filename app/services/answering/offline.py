"""The answerer that needs no keys: an extractive answer from the section that answers the question.

It never invents text: every sentence, option row and code line it shows is copied from the book,
so its answers are grounded by construction. How it chooses (section first):

1. The question is read (question.py): its ask (how-to, what-is, which-option, why-error,
   is-it-possible, example) and its words, weighted by how specific they are to the book.
2. Each passage (a section) is split into units (units.py): sentences, option rows, fields and
   code blocks. The section that answers is the one whose heading and units hold the most of the
   question's weight, times its retrieval prior (its page's strength, less for the page's later
   sections; a page under half the best page's score is not quoted).
3. From that section, in its own order: its sentences that answer (BM25 over the weighted words,
   the section's heading a field of each), what each needs to make sense (the sentence a
   "However, ..." continues; the option a description belongs to: "onBrokenLinks: The behavior
   ..."), and, when the question asks how, which or for an example, the section's command or
   snippet, trimmed to the lines that matter. A sentence that points at something not shown
   ("the following example") is kept only with what it points at.
4. Another section is added only when it holds question words the first lacks; never a sentence
   whose only link to the question is a common word.
5. A follow-up never repeats the previous answer, and keeps its topic: "an example?" gets the
   same section's example. A selection is explained from its section and the sections that
   define its words, not quoted back.
6. Text format (the widget's): plain prose, code inline and plain, one paragraph; Markdown
   format: code spans, and code as a fenced block. Each unit ends with its citation [n].
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator

from app.services.answering.base import AnswerRequest, Usage
from app.services.answering.composing import Quote, Section, normalised, render
from app.services.answering.context import Said, points_elsewhere, topic_of, with_context
from app.services.answering.excerpts import code_excerpt, reads_plain
from app.services.answering.question import (
    EXAMPLE,
    HOW,
    WHAT,
    WHICH,
    WHY,
    Reading,
    read_question,
    what_is_subject,
)
from app.services.answering.units import Unit, passage_units
from app.services.retrieval.floor import TermStatistics
from app.services.retrieval.retriever import Passage
from app.services.retrieval.sparse import Analyzer, term_id

NOT_COVERED = (
    "I couldn't find anything about that in this book. Try rephrasing the question, "
    "or ask about a topic the book covers."
)

MAX_SECTIONS = 3
SENTENCES = (3, 2, 1)  # sentences quoted from the first, second and third section at most
MAX_ANSWER_CHARS = 900  # the widget's panel: about a screen of text
# A sentence of the answering section scoring under this share of its best one adds noise.
KEEP_RATIO = 0.35
# Another section is quoted when it scores close to the first (CLOSE_SECOND of its score), or when
# it holds question weight the answer so far lacks (ADD_SHARE of it) and scores ADD_FLOOR of the first.
CLOSE_SECOND = 0.5
ADD_SHARE = 0.1
ADD_FLOOR = 0.3
SPECIFIC = 0.75  # a word weighing this share of the question's heaviest names its topic on its own
RANK_DECAY = 0.4  # a page's k-th section is worth 1 / (1 + RANK_DECAY * k) of its first
WEAK_PAGE = 0.4  # a page under 0.4 of the best page's score is not quoted from
HEADING_TF = 0.5  # a question word in the section's heading counts as half an occurrence in each unit
SELECTION_WEIGHT = 0.7  # the selection's own words, beside the reader's question
TOPIC_BOOST = 2.0  # a follow-up with no words of its own stays with the section answered before
BM25_K1, BM25_B = 1.2, 0.5
ROW_ASKED = 1.5

# Code blocks labelled as what a command prints, not as what to run or write.
_OUTPUT_LANGS = frozenset({"text", "txt", "plain", "plaintext", "output", "log"})
_PIECE = re.compile(r"\S+\s*|\s+")
_META = re.compile(
    r"\b(?:this (?:section|page|guide|tutorial|document)|we will|we'll|in the following)\b", re.I
)
_DEFINING = r"(?:is|are|means|refers to|lets|allows|permits|enables|provides|which|that)"


class OfflineAnswer:
    """An answer already composed, streamed a word at a time (optionally at a typing pace)."""

    def __init__(self, text: str, delay_seconds: float = 0.0) -> None:
        self.text = text
        self.usage = Usage()
        self._delay = delay_seconds
        self._pieces: Iterator[str] = iter(_PIECE.findall(text))
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
    """Extractive answers: the units of the section that answers the question, then what it lacks."""

    name = "offline"
    writes_markdown = False  # it composes the requested format itself

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        *,
        max_passages: int = 5,
        token_delay_seconds: float = 0.0,
        book_idf: Callable[[], Callable[[str], float] | None] | None = None,
    ) -> None:
        self.analyzer = analyzer or Analyzer()
        self.max_passages = max_passages
        self.token_delay_seconds = token_delay_seconds
        # The live book's IDF (retrieval's term statistics), read once per answer; without it,
        # an IDF over the passages' own units.
        self.book_idf = book_idf

    def answer(self, request: AnswerRequest) -> OfflineAnswer:
        """Compose the answer text now; it is streamed as the caller iterates."""
        return OfflineAnswer(self.compose(request), self.token_delay_seconds)

    def compose(self, request: AnswerRequest) -> str:
        """The whole answer as text (plain prose, or Markdown with code when asked)."""
        markdown = request.format == "markdown"
        passages = request.passages[: self.max_passages]
        selection = request.selection if request.mode == "selection" and request.selection else None
        if not passages:
            if selection:
                return "The book has no section that explains the passage you selected."
            return NOT_COVERED
        sections = self._sections(passages)
        reading = self._read(request.question, sections, request.history, selection)
        seen = normalised(" ".join(text for role, text in request.history if role != "user")[-4000:])
        said = Said(seen, normalised(selection or ""))
        plan = self._plan(sections, reading, said, markdown, topic_of(sections, seen))
        if not plan:
            if seen:
                source = _quoted(_label(passages[0]))
                return f"The book says no more on this than the answer above: see {source} [1]."
            return f"The book covers this in the section {_quoted(_label(passages[0]))} [1]."
        text = render(plan, markdown)
        while not markdown and len(text) > MAX_ANSWER_CHARS and sum(len(q.units) for q in plan) > 1:
            # The estimate left out leads and citations: the last unit goes until it fits.
            last = plan[-1]
            plan = plan[:-1] + (
                [Quote(last.section, last.units[:-1], last.excerpts)] if len(last.units) > 1 else []
            )
            text = render(plan, markdown)
        return text

    # --- reading ------------------------------------------------------------------------------
    def _sections(self, passages: list[Passage]) -> list[Section]:
        priors = _passage_priors([p.file for p in passages], [p.similarity for p in passages])
        sections = []
        for index, passage in enumerate(passages):
            units = passage_units(passage.text, index)
            heading = (passage.heading or passage.title or "").split(" > ")[-1]
            sections.append(
                Section(
                    index,
                    passage,
                    units,
                    [Counter(self.analyzer.terms(_unit_words(u))) for u in units],
                    heading,
                    set(self.analyzer.terms(heading)),
                    priors[index],
                    frozenset(self.analyzer.terms(passage.title or "")),
                )
            )
        return sections

    def _read(
        self, question: str, sections: list[Section], history: list[tuple[str, str]], selection: str | None
    ) -> Reading:
        idf = self.book_idf() if self.book_idf is not None else None
        if idf is None:
            # The retrieval floor's IDF, over these passages' units instead of the book's sections.
            units = [t for s in sections for t in s.terms]
            idf = TermStatistics(len(units), dict(Counter(term_id(t) for terms in units for t in terms))).idf
        previous = next((text for role, text in reversed(history) if role == "user"), None)
        reading = read_question(question, self.analyzer, idf, previous=previous)
        if selection:
            weights = dict(reading.weights)
            for term in set(self.analyzer.terms(selection)):
                weights[term] = max(weights.get(term, 0.0), SELECTION_WEIGHT * max(0.0, idf(term)))
            reading = Reading(reading.ask, weights, reading.own_weight, reading.question)
        return reading

    # --- choosing -----------------------------------------------------------------------------
    def _plan(
        self, sections: list[Section], reading: Reading, said: Said, markdown: bool, topic: int | None
    ) -> list[Quote]:
        weights = reading.weights
        total = sum(weights.values()) or 1.0

        def coverage(section: Section, covered: set[str]) -> float:
            held = section.heading_terms.union(section.title_terms, *section.terms)
            return sum(w for t, w in weights.items() if t in held and t not in covered) / total

        def score(section: Section) -> float:
            value = section.prior * (0.5 + coverage(section, set()))
            if topic is not None and section.index == topic and reading.own_weight < 0.5:
                value *= TOPIC_BOOST  # "an example?": the section answered before
            return value

        # The answering section is one of the best page's (retrieval weighed every page's evidence;
        # the answerer only picks among its sections); other pages follow by their score.
        # Pages retrieval could not tell apart (the same strength) are the answerer's to choose from.
        top = max(s.passage.similarity for s in sections)
        top_pages = {s.passage.file for s in sections if s.passage.similarity >= top - 1e-6}
        ranked = sorted((s for s in sections if s.prior > 0), key=lambda s: (-score(s), s.index))
        opening = next((s for s in ranked if s.passage.file in top_pages), None)
        if opening is not None:
            ranked = [opening] + [s for s in ranked if s is not opening]
        plan: list[Quote] = []
        budget = MAX_ANSWER_CHARS
        covered: set[str] = set()
        for section in ranked:
            if len(plan) == MAX_SECTIONS or budget < 120:
                break
            first = not plan
            if not first:
                ratio = score(section) / (score(plan[0].section) or 1.0)
                adds = coverage(section, covered) >= ADD_SHARE
                if not (ratio >= CLOSE_SECOND or (adds and ratio >= ADD_FLOOR)):
                    continue  # neither as strong as the first nor adding what it lacks
            quote = self._quote(
                section,
                reading,
                said,
                markdown,
                budget,
                first=first,
                covered=covered,
                sentences=SENTENCES[len(plan)],
            )
            if quote is None:
                continue
            plan.append(quote)
            budget -= quote.length(markdown)
            # What this answer has quoted is not quoted again (a page's example repeated on another).
            quoted = " ".join(" ".join(u.code) if u.kind == "code" else u.text for u in quote.units)
            said = Said(f"{said.previous} {normalised(quoted)}", said.selection)
            for unit in quote.units:
                covered |= set(section.terms[unit.position]) & weights.keys()
            covered |= section.heading_terms & weights.keys()
        if not plan:
            # No unit shares a word with the question (another language, other words): retrieval
            # still chose these passages, so open the best one as the book does.
            for section in ranked[:1]:
                first_units = [
                    u for u in section.units if u.kind in ("sentence", "row") and not said.covers(u)
                ][:2]
                if first_units:
                    plan.append(Quote(section, first_units, {}))
        return plan

    def _quote(
        self,
        section: Section,
        reading: Reading,
        said: Said,
        markdown: bool,
        budget: int,
        *,
        first: bool,
        covered: set[str],
        sentences: int,
    ) -> Quote | None:
        """The units of one section that answer, in the section's order (None: none does)."""
        weights = {t: w * (0.5 if t in covered else 1.0) for t, w in reading.weights.items()}
        units = section.units
        relevance = [
            self._relevance(section, i, weights, rows_asked=reading.ask == WHICH) for i in range(len(units))
        ]
        prose = [
            i for i, u in enumerate(units) if u.kind != "code" and not said.covers(u) and relevance[i] > 0
        ]
        prose.sort(key=lambda i: (-relevance[i], i))
        best = relevance[prose[0]] if prose else 0.0
        limit = sentences
        chosen: list[int] = []
        definition = (
            self._definition(reading.question, section, said) if first and reading.ask == WHAT else None
        )
        if definition is not None:
            chosen.append(definition)
        for i in prose:
            if len([c for c in chosen if units[c].kind != "code"]) >= limit:
                break
            if not first and not self._says_enough(section, i, weights):
                continue
            if relevance[i] >= KEEP_RATIO * best and i not in chosen:
                chosen.append(i)
        name = section.name
        if first and name and not chosen:
            # An option's section answers by its description, whatever words it uses.
            chosen.extend([i for i, u in enumerate(units) if u.kind != "code" and not said.covers(u)][:1])
        if first and name:
            chosen.extend(
                i for i, u in enumerate(units) if u.kind == "field" and i not in chosen and not said.covers(u)
            )
        excerpts = {
            i: code_excerpt(u, self._line_weight(weights), markdown)
            for i, u in enumerate(units)
            if u.kind == "code" and not said.covers(u)
        }
        # A window of a long block already shown (one line of a type, say) is not shown again.
        excerpts = {i: lines for i, lines in excerpts.items() if not said.shows(lines)}
        code = self._code(
            section,
            relevance,
            reading,
            weights,
            excerpts,
            markdown,
            best,
            said,
            first=first,
            answers=bool(chosen),
        )
        if code is not None:
            chosen.append(code)
            context = units[code].context
            if (
                context is not None
                and context not in chosen
                and not said.covers(units[context])
                and not points_elsewhere(units[context])
            ):
                chosen.append(context)
        if first and reading.ask in (HOW, WHY) and chosen:
            # A numbered procedure that answers a how-to is answered whole, in its order.
            chosen.extend(i for i, u in enumerate(units) if u.step and i not in chosen and not said.covers(u))
        if not chosen and first and (section.heading_terms & reading.weights.keys()):
            # The heading names the question's topic though no sentence repeats its words.
            chosen = [i for i, u in enumerate(units) if u.kind in ("sentence", "row") and not said.covers(u)][
                :2
            ]
        chosen = with_context(units, chosen, said)
        # In the section's order, but for "what is X?" its definition first, and an option's
        # description before its fields ("onBrokenLinks: The behavior ... Type: ...").
        if definition is None and name:
            definition = next((i for i in sorted(chosen) if units[i].kind == "sentence"), None)
        order = sorted(chosen, key=lambda i: (i != definition, i))
        quote = Quote(section, [units[i] for i in order], {i: excerpts[i] for i in chosen if i in excerpts})
        return quote.within(budget, markdown, relevance)

    @staticmethod
    def _says_enough(section: Section, i: int, weights: dict[str, float]) -> bool:
        """Whether a unit of a further section is about the question, not linked to it by one word:
        it holds two of the question's words, one that its section's heading names too, or one of
        the question's most specific words (a long question's context words weigh less)."""
        heaviest = max(weights.values(), default=0.0)
        held = {t for t in section.terms[i] if weights.get(t, 0.0) >= 0.25 * heaviest}
        return (
            len(held) >= 2
            or bool(held & section.heading_terms)
            or any(weights[t] >= SPECIFIC * heaviest for t in held)
        )

    def _relevance(
        self, section: Section, i: int, weights: dict[str, float], *, rows_asked: bool = False
    ) -> float:
        unit = section.units[i]
        terms = section.terms[i]
        length = sum(terms.values()) or 1
        average = 20.0 if unit.kind != "code" else 40.0
        total = 0.0
        for term, weight in weights.items():
            tf = terms.get(term, 0) + (HEADING_TF if term in section.heading_terms else 0.0)
            if tf:
                total += (
                    weight * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average))
                )
        if _META.search(unit.text):
            total *= 0.5
        if points_elsewhere(unit):
            return 0.0
        if rows_asked and unit.kind == "row":
            total *= ROW_ASKED  # "which option ...?" is answered by an option's row
        if (
            unit.kind == "row"
            and unit.row_name
            and not rows_asked
            and unit.row_name != section.heading.replace("`", "")
            and not set(self.analyzer.terms(unit.row_name)) & weights.keys()
        ):
            # One row of a reference table, not the one the question names, unless the question
            # asks which option or field. A section that is one row (API tables are indexed a
            # section per row) is not discounted.
            total *= 0.4
        return total

    def _line_weight(self, weights: dict[str, float]) -> Callable[[str], float]:
        """The question weight a line of code holds (each of its words once)."""
        return lambda line: sum(weights.get(t, 0.0) for t in set(self.analyzer.terms(line)))

    def _code(
        self,
        section: Section,
        relevance: list[float],
        reading: Reading,
        weights: dict[str, float],
        excerpts: dict[int, list[str]],
        markdown: bool,
        best: float,
        said: Said,
        *,
        first: bool,
        answers: bool,
    ) -> int | None:
        """The code block to quote from this section, if the question wants one."""
        units = section.units
        blocks = [i for i, lines in excerpts.items() if markdown or reads_plain(units[i], lines)]
        if not blocks and excerpts and not markdown:
            # No block reads plain as excerpted: a plainer window of one may (its best lines),
            # unless that window is the one the reader was shown already.
            for i in excerpts:
                excerpts[i] = code_excerpt(units[i], self._line_weight(weights), markdown, plain_only=True)
            blocks = [
                i for i, lines in excerpts.items() if reads_plain(units[i], lines) and not said.shows(lines)
            ]
        if not blocks:
            return None
        wanted = reading.wants_code
        scored = sorted(blocks, key=lambda i: (-relevance[i], i))
        top = scored[0]
        if wanted and units[top].lang in _OUTPUT_LANGS:
            # What a command prints matched the question; the command before it is what to do.
            commands = [i for i in blocks if i < top and units[i].lang not in _OUTPUT_LANGS]
            if commands:
                return commands[-1]
        if relevance[top] <= 0:
            # A block sharing no word with the question is the section's how-to only when the
            # section answers in prose ("How do I ...?": "Run this:"), or an example was asked for.
            return blocks[0] if first and (reading.ask == EXAMPLE or (wanted and answers)) else None
        if wanted or (best > 0 and relevance[top] >= 0.5 * best):
            return top
        return None

    @staticmethod
    def _definition(question: str, section: Section, said: Said) -> int | None:
        """For "what is X?": the unit that defines X ("X is ...", "X, which allows ...", "called X")."""
        subject = what_is_subject(question)
        if subject is None:
            return None
        for i, unit in enumerate(section.units):
            if unit.kind == "code" or said.covers(unit):
                continue
            for named in subject.finditer(unit.text):
                after, before = unit.text[named.end() :], unit.text[: named.start()]
                if re.match(rf"(?:\s*\([^)]*\))?,?\s+{_DEFINING}\b", after, re.I) or re.search(
                    r"\b(?:called|named|known as)\s+$", before, re.I
                ):
                    return i
        return None


def _passage_priors(pages: list[str], strengths: list[float]) -> list[float]:
    """How much each passage's units are worth before reading them: its page's strength
    (retrieval's page score relative to the best page's), decayed for the page's later sections."""
    earlier: Counter[str] = Counter()
    top = max(strengths, default=1.0) or 1.0
    priors = []
    for page, strength in zip(pages, strengths, strict=True):
        relative = strength / top
        priors.append(0.0 if relative < WEAK_PAGE else relative / (1 + RANK_DECAY * earlier[page]))
        earlier[page] += 1
    return priors


def _unit_words(unit: Unit) -> str:
    return f"{unit.intro} {' '.join(unit.code)}" if unit.kind == "code" else unit.text


def _label(passage: Passage) -> str:
    parts = (passage.heading or passage.title or passage.file).split(" > ")
    return " > ".join(parts[-2:])


def _quoted(label: str) -> str:
    return f"“{label}”"
