"""docs/intro.md's promise about the offline answerer, checked on the bundled book: its sentences
and code are the book's own, each cited; the only words it adds are labels: a table row's name and
default, an option's name, what introduces a code excerpt ("For example", "In <file>", "From
“<heading>”"), the "…" where an excerpt is cut (and the fixed sentences for refusals)."""

from __future__ import annotations

import re

import pytest

from app.services.container import make_ingester
from tests.conftest import ROOT

QUESTIONS = [
    "How do I deploy to Hugging Face Spaces?",
    "What does INDEX_ON_START do?",
    "Which variables configure the service?",
    "What is the answer cache?",
    "How do I run the tests?",
    "What does the health endpoint return?",
    "How are conversations stored?",
    "What is selection mode?",
    "How do I connect the widget?",
    "What happens when Gemini is down?",
]


def plain(text: str) -> str:
    """Markdown as the reader sees it, one space between words, any case: links as their text,
    no code, bold or italic markers."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"`|\*+", "", text)
    return " ".join(text.split()).casefold()


@pytest.fixture
def book_app(make_app):
    return make_app(docs_path=ROOT / "docs")


def test_every_sentence_of_an_offline_answer_is_quoted_from_the_book(book_app):
    settings = book_app.extensions["services"].settings
    _, chunks = make_ingester(settings).read_chunks(ROOT / "docs")
    book = plain(" ".join(chunk.text for chunk in chunks))
    client = book_app.test_client()
    for question in QUESTIONS:
        answer = client.post(
            "/api/chat", json={"message": question}, headers={"Accept": "application/json"}
        ).get_json()
        assert answer["answerer"] == "offline" and answer["sources"], answer
        sentences = re.split(r"(?<=\]\.)\s+|(?<=\])\s+", answer["answer"].strip())
        for sentence in sentences:
            assert re.search(r"\[\d+\]\.?$", sentence), f"an uncited sentence: {sentence!r}"
            quoted = re.sub(r"\s*\[\d+\]\.?$", "", sentence)
            quoted = re.sub(r"^[\w.-]+ \([^)]*\): ", "", quoted).rstrip(".")  # a table row's name
            quoted = re.sub(r"^(?:For example(?:, in \S+)?|In \S+|From “[^”]+”): ", "", quoted)  # a code lead
            quoted = re.sub(r"^[\w.@/-]+: (?=[A-Z])", "", quoted)  # the option a description belongs to
            # A code excerpt follows the sentence that introduces it ("...: code"), cut with "…".
            parts = [quoted] if plain(quoted) in book else quoted.split(": ", 1)
            for part in (piece for p in parts for piece in p.split("…")):
                assert not part.strip() or plain(part) in book, (
                    f"{question!r}: not the book's words: {part!r}"
                )
