"""Reading a question without a model: what it asks for, and which of its words name the topic.

Many real questions are GitHub issues, a title and a paragraph of context. The answerer needs:
- the ask: how-to ("How do I...", "Add X", "Implement X"), what-is, which-option, why-error,
  is-it-possible, or a request for an example; how-to, which-option and example asks want the
  section's command or snippet, not only its prose;
- the words that name the topic, each weighted by how specific it is to the book: its IDF over
  the book's sections (words like "feature", "support" or the product's name, which the book uses
  everywhere, weigh almost nothing), lowered for words that ask rather than name ("add", "use").
  In a long question the title (its first sentence) weighs more than the context after it.
- for a follow-up, the previous question's words at a lower weight: the conversation's topic stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from app.services.retrieval.sparse import Analyzer

HOW, WHAT, WHICH, WHY, CAN, EXAMPLE, OTHER = "how", "what", "which", "why", "can", "example", "other"

_ASKS = (
    (EXAMPLE, re.compile(r"\b(?:examples?|snippets?|sample|show me)\b", re.I)),
    (
        WHICH,
        re.compile(
            r"\b(?:which|what)\s+(?:\w+\s+)?(?:options?|settings?|variables?|fields?|commands?|flags?|config\w*|keys?|values?)\b",
            re.I,
        ),
    ),
    (WHAT, re.compile(r"^\s*(?:what|who)(?:'s|\s+is|\s+are|\s+does)\b", re.I)),
    (
        WHY,
        re.compile(
            r"\b(?:why|error|errors|fails?|failing|broken|breaks?|not (?:work|shown|showing)"
            r"|doesn'?t|does not|cannot|can'?t|won'?t|unable)\b",
            re.I,
        ),
    ),
    (
        CAN,
        re.compile(
            r"\b(?:is it possible|is there (?:a|any) way|can (?:i|we|you)|possible to|does \w+ support)\b",
            re.I,
        ),
    ),
    (
        HOW,
        re.compile(
            r"\b(?:how|add|adding|implement|enable|configur\w*|set ?up|setting up|install|use|using"
            r"|create|change|customi[sz]e|deploy|support|want to|need to|translate)\b",
            re.I,
        ),
    ),
)
# Words a question uses to ask rather than to name its topic ("how do I *add* search"): they
# count for little, whatever their rarity in the book.
GENERIC = frozenset(
    "add use creat make set get want need work way chang possibl support allow like help show tri "
    "would should could also new pleas know configur doc page site file featur request implement "
    "exampl give abl issu problem thing seem updat".split()
)
GENERIC_WEIGHT = 0.3
CONTEXT_WEIGHT = 0.6  # words of a long question's context, after its title
PREVIOUS_WEIGHT = 0.5  # a follow-up's previous question: the topic, below the follow-up's own words
_TITLE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# A question of this many words or more is a title plus context (a GitHub issue), not one ask.
LONG_QUESTION_WORDS = 14


@dataclass(frozen=True)
class Reading:
    """What the answerer knows of a question: its ask and its weighted terms."""

    ask: str
    weights: dict[str, float] = field(default_factory=dict)  # analyzed term -> weight
    own_weight: float = 0.0  # the weight of the question's own specific words (0: "an example?")
    question: str = ""

    @property
    def wants_code(self) -> bool:
        """Whether the section's command or snippet is part of the answer."""
        return self.ask in (HOW, WHICH, EXAMPLE, CAN, WHY)


def ask_of(question: str) -> str:
    """The kind of answer the question asks for (see the module's docstring)."""
    title = _title(question)
    for kind, pattern in _ASKS:
        if pattern.search(title):
            return kind
    for kind, pattern in _ASKS:
        if pattern.search(question):
            return kind
    return OTHER


def read_question(
    question: str,
    analyzer: Analyzer,
    idf: Callable[[str], float],
    *,
    previous: str | None = None,
) -> Reading:
    """The question's ask and its terms weighted by `idf` (the book's, where known)."""
    weights: dict[str, float] = {}
    title = _title(question)
    long = len(question.split()) >= LONG_QUESTION_WORDS and title != question
    parts = [(title, 1.0), (question[len(title) :], CONTEXT_WEIGHT)] if long else [(question, 1.0)]
    for text, share in parts:
        for term in set(analyzer.terms(text)):
            weights[term] = max(weights.get(term, 0.0), share * _weight(term, idf))
    own = sum(w for t, w in weights.items() if t not in GENERIC)
    if previous:
        for term in set(analyzer.terms(_title(previous))):
            weights[term] = max(weights.get(term, 0.0), PREVIOUS_WEIGHT * _weight(term, idf))
    ask = ask_of(question)
    if ask == OTHER and previous:
        ask = ask_of(previous)
    return Reading(ask, weights, own, question)


def _weight(term: str, idf: Callable[[str], float]) -> float:
    if term.isdigit():
        return 0.0  # "2. Release", "min. 2": a number names no topic
    return max(0.0, idf(term)) * (GENERIC_WEIGHT if term in GENERIC else 1.0)


def _title(question: str) -> str:
    parts = _TITLE_END.split(question.strip(), maxsplit=1)
    return parts[0] if parts else question


_WHAT_IS = re.compile(
    r"^\s*(?:what|who)(?:'s|\s+is|\s+are|\s+was|\s+were|\s+does)\s+(?:an?\s+|the\s+)?(?P<subject>.+?)"
    r"(?:\s+(?:mean|do|stand for))?\s*\??\s*$",
    re.IGNORECASE,
)


def what_is_subject(question: str) -> re.Pattern[str] | None:
    """For "what is X?": a pattern for X as a sentence names it (plural or -ing forms too)."""
    match = _WHAT_IS.match(question.strip())
    if not match:
        return None
    words = re.findall(r"[\w@/.-]+", match.group("subject"))[:4]
    if not words:
        return None
    stems = [re.escape(word[: max(3, len(word) - 3)]) + r"[\w-]*" for word in words]
    return re.compile(r"\b" + r"\W+".join(stems), re.IGNORECASE)
