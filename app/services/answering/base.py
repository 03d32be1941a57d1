"""What an answerer receives and gives back, and how it fails."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from app.services.errors import ServiceUnavailable
from app.services.retrieval.retriever import Passage


@dataclass(frozen=True)
class AnswerRequest:
    """Everything an answerer may use: the question, the passages, the selection, the history."""

    question: str
    passages: list[Passage]
    mode: str = "general"  # "general" | "selection"
    selection: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # (role, content), oldest first
    format: str = "text"  # "text": plain prose for a text node (the widget); "markdown"


@dataclass
class Usage:
    """Token counts reported by the model (None when unknown, e.g. offline)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class AnswerStream(Protocol):
    """An iterator of text pieces; `usage` is filled in once it is exhausted."""

    usage: Usage

    def __iter__(self) -> Iterator[str]: ...

    def __next__(self) -> str: ...

    def close(self) -> None:
        """Abandon the answer (the reader left): release the upstream request."""
        ...


class Answerer(Protocol):
    """Produces an answer stream for a request."""

    name: str
    # Whether its text may hold Markdown whatever it was asked for (a model may not obey): the
    # plain-text format then passes the stream through the Markdown filter.
    writes_markdown: bool

    def answer(self, request: AnswerRequest) -> AnswerStream:
        """Start answering; errors before the first piece raise `AnswerUnavailable`."""
        ...


class AnswerUnavailable(ServiceUnavailable):
    """The answerer (Gemini) cannot produce the answer now: quota, outage, timeout."""
