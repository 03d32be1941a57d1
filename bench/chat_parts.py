"""Where one answer's CPU goes, step by step: the whole chat in-process, one at a time.

    python -m bench.chat_parts [--chats 300] [--database-url URL]

The app (bundled docs/, a Gemini key pointing at the fake Gemini in its own process: the query
embedding and a 40-event answer of 200 words, as bench.load's pacing minus the waits) answers
--chats widget POSTs through Flask's test client, one after the other, answer cache off. Each
step is timed with the CPU clock of the thread that runs it (`time.thread_time`), so waits for
the fake cost nothing; the whole process's CPU (`time.process_time`) includes every thread
(the stream's producer thread, the index's own search threads). One thread, no contention: what
each step costs, not the latency under load (bench.load), where everything costs about twice as
much. Steps nest: `retrieve` includes the searches, the floor and the embedding call.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import FAKE_KEY, ROOT, emit, fake_gemini, machine
from bench.load import QUESTIONS, WORDS

# (class path, method, label), outermost first.
STEPS = [
    ("app.services.chat:ChatService", "start", "before the first byte (ChatService.start)"),
    ("app.services.conversations:ConversationStore", "open_turn", "store the question"),
    ("app.services.retrieval.retriever:Retriever", "retrieve", "retrieve"),
    ("app.services.index.edge:EdgeIndex", "search", "index searches (2)"),
    ("app.services.retrieval.floor:RelevanceFloor", "judge", "relevance floor (its term matches included)"),
    ("app.services.providers.gemini:GeminiProvider", "embed_query", "query embedding call"),
    ("app.services.index.edge:EdgeIndex", "payloads", "the passages' payloads"),
    ("app.services.providers.gemini:GeminiProvider", "stream", "open Gemini's stream, first event"),
    ("app.services.conversations:ConversationStore", "finish_turns", "store the answer"),
]


class Meter:
    """Thread-CPU seconds per label, by wrapping methods."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.thread_time() - started

        setattr(owner, name, timed)

    def wrap_threads(self) -> None:
        # Every thread the app starts (the stream's producer), by name.
        run = threading.Thread.run
        meter = self

        def timed_run(thread: threading.Thread) -> None:
            started = time.thread_time()
            try:
                run(thread)
            finally:
                meter.seconds[f"thread {thread.name}"] += time.thread_time() - started

        threading.Thread.run = timed_run  # type: ignore[method-assign]  # measuring every thread


def build_app(fake_url: str, database_url: str | None, folder: Path) -> Any:
    sys.path.insert(0, str(ROOT))
    from app import create_app
    from app.config import Settings
    from app.database import upgrade_database
    from app.tuning import Tuning

    settings = Settings(
        _env_file=None,
        instance_path=folder / "instance",
        database_url=database_url or f"sqlite:///{folder}/chat.db",
        docs_path=ROOT / "docs",
        gemini_api_key=FAKE_KEY,
        gemini_base_url=fake_url,
        rate_limit_chat="1000000/minute",
        log_level="WARNING",
    )
    # Every chat answered anew (no answer cache), and no limit in the way of one client's chats.
    tuning = Tuning(answer_cache_entries=0, rate_limit_default="1000000/minute", max_streams_per_client=1000)
    application = create_app(settings, tuning)
    upgrade_database(application)
    services = application.extensions["services"]
    services.startup.run()
    if services.startup.state != "ready":
        raise SystemExit(f"start-up failed: {services.startup.error}")
    return application


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args(argv)

    answer = " ".join(WORDS[i % len(WORDS)] for i in range(200))
    fake = fake_gemini("--chunk-words", "5", "--reply-text", answer).start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            application = build_app(fake.base_url, args.database_url, Path(folder))
            client = application.test_client()

            def chat(n: int) -> None:
                response = client.post("/api/chat", json={"message": QUESTIONS[n % len(QUESTIONS)]})
                if response.status_code != 200 or b'"type": "done"' not in response.data:
                    raise SystemExit(f"chat {n} failed: {response.status_code} {response.data[:200]!r}")

            for n in range(20):  # warm-up: imports, first connections, caches
                chat(n)
            meter = Meter()
            for path, method, label in STEPS:
                module, _, owner = path.partition(":")
                meter.wrap(getattr(importlib.import_module(module), owner), method, label)
            meter.wrap_threads()
            process, main_thread = time.process_time(), time.thread_time()
            for n in range(args.chats):
                chat(n)
            process, main_thread = time.process_time() - process, time.thread_time() - main_thread
    finally:
        fake.stop()

    def per_chat(seconds: float) -> float:
        return round(seconds / args.chats * 1000, 2)

    rows: list[list[Any]] = [
        ["the whole process (every thread)", per_chat(process)],
        ["the request's thread (Flask and the test client included)", per_chat(main_thread)],
    ]
    rows += [[f"  {label}", per_chat(meter.seconds[label])] for _, _, label in STEPS]
    rows += [
        [label, per_chat(seconds)] for label, seconds in meter.seconds.items() if label.startswith("thread ")
    ]
    emit(
        f"CPU per answer by step, one chat at a time ({args.chats} chats, "
        f"{'PostgreSQL' if args.database_url else 'SQLite'})",
        ["step", "CPU ms per answer"],
        rows,
        {
            "bench": "chat_parts",
            "machine": machine(),
            "chats": args.chats,
            "steps": {r[0].strip(): r[1] for r in rows},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
