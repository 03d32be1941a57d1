"""The answerer that needs no keys: brief quotes from the best passages, each cited as [n].

It never invents text: every sentence it shows is copied from the book (or from the reader's
selection), so its answers are grounded by construction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from app.services.answering.base import AnswerRequest, Usage
from app.services.retrieval.retriever import Passage
from app.services.retrieval.sparse import Analyzer

NOT_COVERED = (
    "I couldn't find anything about that in this book. Try rephrasing the question, "
    "or ask about a topic the book covers."
)

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`*\"'(\[])")
_PIECE = re.compile(r"\S+\s*|\s+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$", re.MULTILINE)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
# Emphasis markers only at word edges (snake_case names keep their underscores), and never
# inside `inline code`.
_EMPHASIS = re.compile(r"(?<![\w*`])(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_INLINE_CODE = re.compile(r"(`[^`]*`)")


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
    """Extractive answers: for each of the best passages, its sentences closest to the question."""

    name = "offline"

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        *,
        max_passages: int = 3,
        sentences_per_passage: int = 2,
        token_delay_seconds: float = 0.0,
    ) -> None:
        self.analyzer = analyzer or Analyzer()
        self.max_passages = max_passages
        self.sentences_per_passage = sentences_per_passage
        self.token_delay_seconds = token_delay_seconds

    def answer(self, request: AnswerRequest) -> OfflineAnswer:
        """Compose the answer text now; it is streamed as the caller iterates."""
        return OfflineAnswer(self.compose(request), self.token_delay_seconds)

    def compose(self, request: AnswerRequest) -> str:
        """The whole answer as text."""
        question_terms = set(self.analyzer.terms(request.question))
        parts: list[str] = []
        if request.mode == "selection" and request.selection:
            quoted = self._best_sentences(request.selection, question_terms)
            parts.append(f"From the passage you selected: {quoted}")
        if not request.passages:
            return parts[0] if parts else NOT_COVERED
        intro = "Related sections of the book:" if parts else "Here is what the book says:"
        bullets = [
            f"- **{_label(passage)}**: {self._best_sentences(passage.text, question_terms)} [{n}]"
            for n, passage in enumerate(request.passages[: self.max_passages], start=1)
        ]
        parts.append(intro + "\n\n" + "\n".join(bullets))
        return "\n\n".join(parts)

    def _best_sentences(self, text: str, question_terms: set[str]) -> str:
        sentences = _sentences(text)
        if not sentences:
            return "(an example; see the section)" if _FENCE.search(text) else ""
        scored = []
        for position, sentence in enumerate(sentences):
            overlap = len(question_terms & set(self.analyzer.terms(sentence)))
            scored.append((overlap, -position, sentence))
        best = sorted(scored, reverse=True)[: self.sentences_per_passage]
        # Keep the book's order so the quote reads naturally.
        chosen = [sentence for _, _, sentence in sorted(best, key=lambda item: -item[1])]
        return _shorten(" ".join(chosen), 400)


def _label(passage: Passage) -> str:
    return passage.heading or passage.title or passage.file


def _sentences(text: str) -> list[str]:
    prose = _FENCE.sub(" ", text)  # code blocks are cited, not quoted inline
    prose = _TABLE_RULE.sub("", prose)
    # A table row reads as "cell — cell — cell." so it can be quoted like a sentence.
    prose = _TABLE_ROW.sub(lambda m: " — ".join(c.strip() for c in m.group(1).split("|") if c.strip()) + ".", prose)
    prose = _LINK.sub(r"\1", prose)
    prose = "".join(
        part if part.startswith("`") else _EMPHASIS.sub(r"\2", part) for part in _INLINE_CODE.split(prose)
    )
    prose = re.sub(r"^\s*(?:[-*+]|\d+\.|#{1,6})\s+", "", prose, flags=re.MULTILINE)
    flat = " ".join(prose.split())
    return [s.strip() for s in _SENTENCE_END.split(flat) if len(s.strip()) > 2]


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"
