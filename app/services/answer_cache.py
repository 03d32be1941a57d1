"""Answers to repeated first questions, replayed without retrieval or a Gemini call.

Readers of one book ask the same first questions ("How do I install it?"). A first-turn,
general-mode question whose answer was grounded and complete is kept here, keyed on the index
version, the normalised question and the answer format (plain text or Markdown), and the next
reader who asks it gets the same answer and sources, streamed the same way, marked `cached`.

- **Invalidation**: the key holds the index version, which changes on every ingest write, so a
  re-indexed book never serves an answer built from the old text (old entries age out of the LRU).
- **Only first turns**: a follow-up depends on its conversation, so it is never looked up.
- **Bounded**: at most `max_entries` answers (least recently used dropped); 0 disables the cache.
- **Per process**: each gunicorn worker has its own cache (a question becomes cached in a worker
  once that worker has answered it). Nothing is shared between workers or kept across restarts.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from app.services.answering.base import Usage
from app.services.retrieval.retriever import Passage

CACHE_ANSWERER = "cache"

_TRAILING_PUNCTUATION = re.compile(r"[\s?!.,;:…。？！、]+$")


def normalise_question(text: str) -> str:
    """The form questions are compared in: Unicode-normalised, case-folded, single spaces, no
    trailing punctuation ("How do I deploy?  " and "how do i  DEPLOY" are the same question)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    collapsed = " ".join(folded.split())
    return _TRAILING_PUNCTUATION.sub("", collapsed)


@dataclass(frozen=True)
class CachedAnswer:
    """An answer as it was streamed: its pieces, the passages it cited (in [n] order), who wrote it."""

    pieces: tuple[str, ...]
    passages: tuple[Passage, ...]
    answerer: str

    def replay(self) -> ReplayStream:
        """The answer as a stream of its original pieces."""
        return ReplayStream(self.pieces)


class ReplayStream:
    """An `AnswerStream` over stored pieces: no upstream, no tokens spent."""

    def __init__(self, pieces: tuple[str, ...]) -> None:
        self.usage = Usage()
        self._pieces = iter(pieces)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Nothing upstream to release."""
        self._pieces = iter(())


CacheKey = tuple[str, str, str]


class AnswerCache:
    """A thread-safe LRU of answers keyed on (index version, normalised question, format)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("an answer cache holds at least one entry (use None for no cache)")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(index_version: str, question: str, answer_format: str = "text") -> CacheKey:
        """The key of a question asked against one version of the index, in one answer format."""
        return (index_version, normalise_question(question), answer_format)

    def get(self, key: CacheKey) -> CachedAnswer | None:
        """The cached answer, marked most recently used; None on a miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: CacheKey, answer: CachedAnswer) -> None:
        """Keep an answer, dropping the least recently used beyond `max_entries`."""
        with self._lock:
            self._entries[key] = answer
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._entries.clear()
