"""What the reader receives of an answer stream: the requested format, and only the cited sources.

A chat turn feeds every piece of the answerer's stream through an `AnswerShaper`:
1. for the plain-text format (the widget's), Markdown markers are removed on the fly
   (`MarkdownToText`), whatever the model wrote;
2. citations are renumbered in order of first appearance (`CitationRenumberer`), so the
   `sources` list is exactly the cited passages, in the order of their [n].
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from app.services.answering.citations import CitationRenumberer
from app.services.answering.plaintext import MarkdownToText, markdown_to_text
from app.services.retrieval.retriever import Passage

TEXT = "text"
MARKDOWN = "markdown"

SOURCE_TEXT_CHARS = 600  # enough of the section to read it where no link can show it


class AnswerShaper:
    """Filters one answer stream; `feed` each piece, `finish` once, then read `sources`."""

    def __init__(self, passages: list[Passage], *, strip_markdown: bool) -> None:
        self._passages = passages
        self._plain = MarkdownToText() if strip_markdown else None
        self._citations = CitationRenumberer(len(passages))

    def feed(self, piece: str) -> str:
        """The shaped text to send now (may be empty while a marker is undecided)."""
        text = self._plain.feed(piece) if self._plain is not None else piece
        return self._citations.feed(text) if text else ""

    def finish(self) -> str:
        """Whatever was held back, once the answer has ended."""
        text = self._plain.finish() if self._plain is not None else ""
        return self._citations.feed(text) + self._citations.finish()

    @property
    def cited_count(self) -> int:
        """How many passages the text has cited so far."""
        return len(self._citations.cited)

    @property
    def cited(self) -> list[Passage]:
        """The passages the text cites, in the order of their [n]."""
        return [self._passages[i] for i in self._citations.cited]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The `sources` of the `done` event: the cited passages only."""
        return [source_of(passage) for passage in self.cited]


def source_of(passage: Passage) -> dict[str, Any]:
    """A passage as a `sources` entry, its `snippet` the section's opening as plain text."""
    source = passage.source()
    source["snippet"] = _snippet(passage.text)
    return source


@lru_cache(maxsize=1024)
def _snippet(text: str) -> str:
    # A section's snippet is read at every new citation of a stream and on every cached replay:
    # the Markdown pass runs once per section text.
    plain = " ".join(markdown_to_text(text).split())
    if len(plain) > SOURCE_TEXT_CHARS:
        plain = plain[: SOURCE_TEXT_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return plain
