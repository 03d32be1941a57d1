"""What the services tell whoever watches them (metrics, logs): a no-op base class.

The chat service and the Gemini provider call these methods at the moments that matter; the app
passes in a group of subclasses: one turns them into Prometheus metrics, one writes the chat log
line (`app/observability/`).
So the services stay free of Flask and of prometheus_client, and tests can pass a recorder.
Implementations must be cheap and must never raise (they run inside a reader's stream).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class TurnReport:
    """How one chat turn went, reported once when it ends (streamed, collected or failed)."""

    conversation_id: str
    message_id: str
    mode: str
    status: str  # complete | interrupted | failed
    error_code: str | None
    answerer: str  # "offline", "gemini:<model>", or "cache"
    cached: bool
    grounded: bool | None
    passages: int
    retrieval_ms: int | None
    first_token_ms: int | None
    total_ms: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    store_ms: int | None = None  # storing the answer at the end (after total_ms)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the chat log line)."""
        return asdict(self)


class Observer:
    """Receives the services' events; every method is a no-op here."""

    # --- a chat turn --------------------------------------------------------------------------
    def answer_cache_lookup(self, hit: bool) -> None:
        """A first-turn general question was looked up in the answer cache."""

    def retrieval_finished(self, seconds: float) -> None:
        """Retrieval for a question took `seconds`."""

    def stream_opened(self) -> None:
        """An answer started streaming (paired with exactly one `turn_finished`)."""

    def first_token(self, seconds: float, source: str) -> None:
        """The first piece of an answer is ready, `seconds` after the question arrived.

        `source` is "gemini", "offline" or "cache".
        """

    def turn_finished(self, report: TurnReport, *, streamed: bool) -> None:
        """A turn ended; `streamed` is True when it was opened with `stream_opened`."""

    def answers_checkpointed(self, rows: int) -> None:
        """The text so far of `rows` answers in progress was saved, in one transaction."""

    # --- Gemini -------------------------------------------------------------------------------
    def gemini_call(self, kind: str, code: str, seconds: float) -> None:
        """One HTTP attempt to Gemini ended: `kind` answer|completion|embedding, `code` "ok",
        an HTTP status ("429", "503"), "timeout", "transport" or "circuit_open" (no call made)."""

    def gemini_failure(self, kind: str, code: str) -> None:
        """A Gemini request failed for good (after its retries, or mid-stream); `code` is the
        code the reader is given (quota_exhausted, model_unavailable, timeout, ...)."""

    def gemini_tokens(self, kind: str, prompt: int | None, completion: int | None) -> None:
        """Tokens a Gemini request used, as Gemini reported them."""


class ObserverGroup(Observer):
    """Passes every event on to each of its observers, in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def answer_cache_lookup(self, hit: bool) -> None:
        for observer in self.observers:
            observer.answer_cache_lookup(hit)

    def retrieval_finished(self, seconds: float) -> None:
        for observer in self.observers:
            observer.retrieval_finished(seconds)

    def stream_opened(self) -> None:
        for observer in self.observers:
            observer.stream_opened()

    def first_token(self, seconds: float, source: str) -> None:
        for observer in self.observers:
            observer.first_token(seconds, source)

    def turn_finished(self, report: TurnReport, *, streamed: bool) -> None:
        for observer in self.observers:
            observer.turn_finished(report, streamed=streamed)

    def answers_checkpointed(self, rows: int) -> None:
        for observer in self.observers:
            observer.answers_checkpointed(rows)

    def gemini_call(self, kind: str, code: str, seconds: float) -> None:
        for observer in self.observers:
            observer.gemini_call(kind, code, seconds)

    def gemini_failure(self, kind: str, code: str) -> None:
        for observer in self.observers:
            observer.gemini_failure(kind, code)

    def gemini_tokens(self, kind: str, prompt: int | None, completion: int | None) -> None:
        for observer in self.observers:
            observer.gemini_tokens(kind, prompt, completion)


NULL_OBSERVER = Observer()
