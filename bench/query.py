"""Backend time per chat, Gemini excluded: retrieval + prompt + persistence, p50/p95.

    python -m bench.query [--chats 300] [--big-chunks 10000] [--database-url URL]

Runs the service's own ChatService in this process (the app's database, index and retriever)
with an answerer that builds the full Gemini prompt (passages, selection, history) and returns a
one-piece answer at once, so what is timed is everything the backend does around Gemini: store
the question, retrieve (keyword BM25; a query embedding would be a Gemini call), build the prompt,
stream the events, store the answer. The answer cache is off (every chat does the full work).

Two books: the bundled one (docs/, the demo) and a synthetic one of about --big-chunks chunks
(copies of ../shared/corpora/docusaurus-docs, fetched by scripts/fetch_corpus.py when missing;
skipped if that fails). Questions: the labelled GitHub questions in
../shared/eval when present, else a built-in list. Each part is also timed on its own. Prints a
table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import CORPUS, EVAL_QUESTIONS, ROOT, emit, ensure_corpus, machine, ms, percentile

FALLBACK_QUESTIONS = [
    "How do I deploy to Hugging Face Spaces?",
    "How do I configure CORS?",
    "What does the health endpoint report?",
    "How do I run the tests?",
    "How do I add a sidebar?",
    "How do I configure the blog?",
    "What is MDX?",
    "How do I use versioning?",
]


class PromptOnlyAnswerer:
    """Builds the Gemini prompt exactly as the Gemini answerer does, then answers at once."""

    name = "bench"

    def __init__(self) -> None:
        from app.services.answering import gemini

        self._gemini = gemini

    def answer(self, request):
        from app.services.answering.offline import OfflineAnswer

        contents = self._gemini.history_contents(request.history, 2000)
        contents.append(
            self._gemini.types.Content(
                role="user", parts=[self._gemini.types.Part(text=self._gemini.build_prompt(request))]
            )
        )
        return OfflineAnswer("An answer [1].")


def questions() -> list[str]:
    if EVAL_QUESTIONS.is_file():
        return [
            json.loads(line)["question"] for line in EVAL_QUESTIONS.read_text().splitlines() if line.strip()
        ]
    return FALLBACK_QUESTIONS


def big_book_source_present() -> bool:
    """Whether the corpus the big book copies is here (fetched by scripts/fetch_corpus.py if not)."""
    try:
        return ensure_corpus().is_dir()
    except subprocess.CalledProcessError:
        print(
            "no Docusaurus corpus (scripts/fetch_corpus.py failed): the big book is skipped", file=sys.stderr
        )
        return False


def synthetic_book(target: Path, chunks_wanted: int, chunks_per_copy: int) -> int:
    """Copies of the corpus side by side (each a different folder, so different routes and ids)."""
    source = CORPUS / "docs" if (CORPUS / "docs").is_dir() else CORPUS
    copies = max(1, round(chunks_wanted / chunks_per_copy))
    for n in range(copies):
        shutil.copytree(source, target / f"copy-{n:02d}")
    return copies


def measure(docs: Path, database_url: str | None, chats: int, label: str) -> dict:
    from app import create_app
    from app.database import upgrade_database
    from app.services.chat import ChatQuestion, ChatService

    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        overrides = {
            "instance_path": Path(tmp),
            "docs_path": docs,
            "index_on_start": False,
            "log_level": "WARNING",
        }
        if database_url:
            overrides["database_url"] = database_url
        app = create_app(overrides)
        upgrade_database(app)
        services = app.extensions["services"]
        started = time.perf_counter()
        summary = services.ingest_book()
        ingest_s = time.perf_counter() - started
        chat = ChatService(services.store, services.retriever, PromptOnlyAnswerer())
        answerer = PromptOnlyAnswerer()
        asked = questions()
        for q in asked[:5]:  # warm-up
            list(chat.start(ChatQuestion(q)).events())

        total, retrieval, prompt, persistence = [], [], [], []
        from app.models import MessageStatus
        from app.services.answering.base import AnswerRequest
        from app.services.conversations import TurnOutcome

        for i in range(chats):
            q = asked[i % len(asked)]
            t0 = time.perf_counter()
            list(chat.start(ChatQuestion(q)).events())
            total.append(time.perf_counter() - t0)
            # The same work, part by part.
            t0 = time.perf_counter()
            passages = services.retriever.retrieve(q).passages
            t1 = time.perf_counter()
            answerer.answer(AnswerRequest(question=q, passages=passages))
            t2 = time.perf_counter()
            turn = services.store.open_turn(None, q, "general", None)
            services.store.finish_turn(
                turn.assistant_message_id,
                TurnOutcome(content="An answer [1].", status=MessageStatus.COMPLETE),
            )
            t3 = time.perf_counter()
            retrieval.append(t1 - t0)
            prompt.append(t2 - t1)
            persistence.append(t3 - t2)
        with app.app_context():
            from app.extensions import db

            backend = db.engine.dialect.name
            db.engine.dispose()
    return {
        "book": label,
        "chunks": summary.chunks,
        "files": summary.files,
        "ingest_s": round(ingest_s, 2),
        "database": backend,
        "chats": chats,
        **{
            f"{name}_p{p}_ms": ms(percentile(values, p))
            for name, values in (
                ("total", total),
                ("retrieval", retrieval),
                ("prompt", prompt),
                ("persistence", persistence),
            )
            for p in (50, 95)
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--big-chunks", type=int, default=10_000, help="0 skips the big book")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args(argv)

    results = [measure(ROOT / "docs", args.database_url, args.chats, "bundled (docs/)")]
    if args.big_chunks and big_book_source_present():
        with tempfile.TemporaryDirectory(prefix="bench-big-book-") as tmp:
            copies = synthetic_book(Path(tmp), args.big_chunks, 1266)
            results.append(measure(Path(tmp), args.database_url, args.chats, f"{copies} × docusaurus-docs"))

    headers = [
        "book",
        "chunks",
        "db",
        "total p50 / p95 ms",
        "retrieval p50 / p95",
        "prompt p50 / p95",
        "persistence p50 / p95",
    ]
    rows = [
        [r["book"], r["chunks"], r["database"]]
        + [
            f"{r[f'{n}_p50_ms']:.1f} / {r[f'{n}_p95_ms']:.1f}"
            for n in ("total", "retrieval", "prompt", "persistence")
        ]
        for r in results
    ]
    emit(
        f"Backend time per chat, Gemini excluded ({args.chats} chats per book, one thread)",
        headers,
        rows,
        {"bench": "query", "machine": machine(), "results": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
