"""Making a follow-up question standalone, so retrieval finds what it refers to."""

from __future__ import annotations

from typing import Protocol


class QueryRewriter(Protocol):
    """Makes a follow-up question standalone for retrieval."""

    def rewrite(self, question: str, history: list[tuple[str, str]]) -> str:
        """The standalone query."""
        ...


class ConcatenatingRewriter:
    """Without Gemini: search with the reader's previous question and the follow-up together.

    "And how do I configure it?" alone finds nothing; with the previous question in front
    ("How do I add search to my site?") the keywords of the topic are back in the query.
    """

    def rewrite(self, question: str, history: list[tuple[str, str]]) -> str:
        """The last user turn, then the question."""
        previous = next((text for role, text in reversed(history) if role == "user"), "")
        return f"{previous}\n{question}" if previous else question
