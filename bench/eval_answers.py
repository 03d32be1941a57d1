"""What readers read: real questions and off-topic ones through the chat path, answers checked.

    python -m bench.eval_answers --docs ../shared/corpora/docusaurus-docs \
        --questions ../shared/eval/docusaurus-questions.dev.jsonl \
        --offtopic bench/offtopic_questions.jsonl [--modes keyword,hybrid]

Builds the service (create_app: SQLite and the embedded index in a temporary folder), indexes
DOCS, and asks every question through `ChatService` exactly as the widget's request would (no
format hint), with the offline answerer; "hybrid" embeds the book and the questions with
all-MiniLM-L6-v2 behind the fake Gemini (bench/README.md). Per mode it counts, from the streamed
text and the `done` event's sources:

- markdown: answers with Markdown markers (the widget shows them literally; target 0);
- broken: answers with broken text (dangling colon before [n], doubled punctuation,
  placeholders, flattened table rows, dropped URLs; target 0);
- uncited_sources: answers listing a source they never cite (target 0);
- gold_cited: share of answered real questions citing a page that answers them (target ≥ 0.85);
- real_refused: real questions answered "not in the book" (target 0);
- offtopic_refused: share of off-topic questions refused (target ≥ 0.9);
- follow_up_repeats: of the follow-ups "Can you give an example?" asked after each answered
  real question (in its conversation), those repeating a sentence of the first answer (target 0);
- all_facts, facts_share: over the real questions that have key facts (the strings an
  actionable answer must contain: `key_facts` in the question's line, or in a `.keyfacts.jsonl`
  beside the questions file, matched by id), the share of answers holding all of them and the
  mean share held (targets ≥ 0.5 and ≥ 0.7 on the dev questions).

Prints a table, the worst examples of each problem, then one JSON line. `--dump FILE` writes
every answer (question, text, sources, key facts held) as JSONL, to read them as a reader would.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bench.answer_checks import (
    broken_text,
    cites_gold_page,
    key_facts_held,
    markdown_markers,
    uncited_sources,
)
from bench.eval_retrieval import docs_folder, label_path, read_questions

if TYPE_CHECKING:
    from app.tuning import Tuning

METRICS = (
    "real",
    "offtopic",
    "markdown",
    "broken",
    "uncited_sources",
    "gold_cited",
    "real_refused",
    "offtopic_refused",
    "keyfacts",
    "all_facts",
    "facts_share",
    "longest",
    "follow_ups",
    "follow_up_repeats",
)


def ask_all(
    docs: Path,
    questions: list[dict],
    offtopic: list[dict],
    *,
    site_url: str,
    route_base_path: str,
    current_page: str = "none",
    tuning: Tuning | None = None,
) -> dict:
    """Index `docs`, ask every question through the chat path (services built with `tuning`), and
    check every answer."""
    from app import create_app
    from app.database import upgrade_database
    from app.extensions import db
    from app.services.answering.offline import OfflineAnswerer
    from app.services.chat import ChatQuestion, ChatService
    from app.services.container import make_ingester
    from bench.eval_retrieval import reader_page

    with tempfile.TemporaryDirectory(prefix="bench-answers-") as tmp:
        app = create_app(
            {
                "instance_path": Path(tmp),
                "docs_path": docs,
                "index_on_start": False,
                "log_level": "WARNING",
                "qdrant_url": None,
                "book_site_url": site_url,
                "book_route_base_path": route_base_path,
            },
            tuning,
        )
        upgrade_database(app)
        services = app.extensions["services"]
        services.ingest_book()
        hybrid = services.settings.gemini_enabled
        chat = ChatService(
            services.store, services.retriever, OfflineAnswerer(book_idf=services.retriever.book_idf)
        )
        _, chunks = make_ingester(services.settings, tuning=tuning).read_chunks(
            docs, site_url=site_url, route_base_path=route_base_path
        )
        page_urls = {c.file: c.url.split("#")[0] for c in chunks}
        answers = []
        for kind, group in (("real", questions), ("offtopic", offtopic)):
            for q in group:
                gold = [label_path(f, docs) for f in q.get("expected_files", [])]
                page = (
                    reader_page(current_page, gold, page_urls)
                    if gold
                    else None
                    if current_page == "none"
                    else min(page_urls.values())
                )
                conversation, text, sources, grounded = ask(chat, ChatQuestion(q["question"], page=page))
                answer = {
                    "id": q["id"],
                    "kind": kind,
                    "question": q["question"],
                    "text": text,
                    "sources": sources,
                    "grounded": grounded,
                    "gold": gold,
                    "key_facts": q.get("key_facts"),
                    "any_of": q.get("any_of"),
                }
                if kind == "real" and grounded:
                    # The follow-up readers ask most: it must add to the answer, not repeat it.
                    _, again, _, _ = ask(
                        chat, ChatQuestion(FOLLOW_UP, conversation_id=conversation, page=page)
                    )
                    answer["follow_up"] = again
                answers.append(answer)
        with app.app_context():
            db.engine.dispose()
    return {"mode": "hybrid" if hybrid else "keyword", "answers": answers}


FOLLOW_UP = "Can you give an example?"


def ask(chat, question) -> tuple:
    """(conversation id, streamed text, sources, grounded) of one question through the chat path."""
    conversation, text, sources, grounded = None, "", [], False
    for event in chat.start(question).events():
        if event["type"] == "metadata":
            conversation = uuid.UUID(event["conversation_id"])
        elif event["type"] == "token":
            text += event["content"]
        elif event["type"] == "done":
            sources, grounded = event["sources"], event["grounded"]
    return conversation, text, sources, grounded


def repeats(first: str, follow_up: str) -> bool:
    """Whether the follow-up repeats a sentence of the first answer (citations aside)."""

    def sentences(text: str) -> set[str]:
        return {
            " ".join(s.split()).casefold() for s in re.split(r"\s*\[\d+\]\.?\s*", text) if len(s.split()) >= 5
        }

    return bool(sentences(first) & sentences(follow_up))


def score(answers: list[dict]) -> dict:
    """The metrics of a run, and the answers behind each problem."""
    real = [a for a in answers if a["kind"] == "real"]
    off = [a for a in answers if a["kind"] == "offtopic"]
    answered = [a for a in answers if a["grounded"]]
    problems = {
        "markdown": [(a, markdown_markers(a["text"])) for a in answered],
        "broken": [(a, broken_text(a["text"])) for a in answered],
        "uncited_sources": [(a, uncited_sources(a["text"], a["sources"])) for a in answered],
    }
    problems = {name: [(a, found) for a, found in pairs if found] for name, pairs in problems.items()}
    real_answered = [a for a in real if a["grounded"]]
    metrics = {
        "real": len(real),
        "offtopic": len(off),
        **{name: len(pairs) for name, pairs in problems.items()},
        "gold_cited": round(
            sum(cites_gold_page(a["text"], a["sources"], a["gold"]) for a in real_answered)
            / max(1, len(real_answered)),
            3,
        ),
        "real_refused": sum(1 for a in real if not a["grounded"]),
        "offtopic_refused": round(sum(1 for a in off if not a["grounded"]) / max(1, len(off)), 3),
    }
    with_facts = [a for a in real if a.get("key_facts")]
    for a in with_facts:
        a["facts_held"] = key_facts_held(a["text"], a["key_facts"], a.get("any_of"))
    metrics["keyfacts"] = len(with_facts)
    metrics["all_facts"] = round(sum(all(a["facts_held"]) for a in with_facts) / max(1, len(with_facts)), 3)
    metrics["facts_share"] = round(
        sum(sum(a["facts_held"]) / len(a["facts_held"]) for a in with_facts) / max(1, len(with_facts)), 3
    )
    metrics["longest"] = max((len(a["text"]) for a in answered), default=0)
    follow_ups = [a for a in real if "follow_up" in a]
    metrics["follow_ups"] = len(follow_ups)
    metrics["follow_up_repeats"] = sum(repeats(a["text"], a["follow_up"]) for a in follow_ups)
    return {"metrics": metrics, "problems": problems}


def with_key_facts(questions: list[dict], path: Path | None) -> list[dict]:
    """The questions, each with the `key_facts` (and `any_of`) of its id in the JSONL at `path`."""
    if path is None or not path.exists():
        return questions
    facts = {row["id"]: row for row in read_questions(path)}
    return [
        {**q, **{k: facts[q["id"]][k] for k in ("key_facts", "any_of") if k in facts.get(q["id"], {})}}
        for q in questions
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, required=True, help="the Docusaurus docs folder")
    parser.add_argument("--questions", type=Path, required=True, help="JSONL of labelled real questions")
    parser.add_argument(
        "--offtopic", type=Path, required=True, help="JSONL of questions the book does not cover"
    )
    parser.add_argument("--modes", default="keyword", help="comma-separated: keyword, hybrid (MiniLM)")
    parser.add_argument("--site-url", default="https://docusaurus.io")
    parser.add_argument("--route-base-path", default="docs")
    parser.add_argument(
        "--keyfacts", type=Path, help="JSONL of key facts by id (default: QUESTIONS' .keyfacts.jsonl)"
    )
    parser.add_argument("--examples", type=int, default=3, help="answers shown per problem")
    parser.add_argument(
        "--current-page",
        choices=("none", "gold", "unrelated"),
        default="none",
        help="the page the reader is on: none, the gold page, or an unrelated page",
    )
    parser.add_argument("--dump", type=Path, help="write every answer as JSONL here")
    args = parser.parse_args(argv)
    keyfacts = args.keyfacts or args.questions.with_name(
        args.questions.name.replace(".jsonl", ".keyfacts.jsonl")
    )
    questions = with_key_facts(read_questions(args.questions), keyfacts)
    offtopic = read_questions(args.offtopic)
    docs = docs_folder(args.docs)

    results = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        from bench._embeddings import embeddings

        with embeddings(mode) as tuning:
            run = ask_all(
                docs,
                questions,
                offtopic,
                site_url=args.site_url,
                route_base_path=args.route_base_path,
                current_page=args.current_page,
                tuning=tuning,
            )
        results[mode] = score(run["answers"])
        if args.dump:
            dump = args.dump if len(results) == 1 else args.dump.with_suffix(f".{mode}.jsonl")
            dump.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in run["answers"]))

    print("| mode | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for mode, result in results.items():
        print(f"| {mode} | " + " | ".join(str(result["metrics"][k]) for k in METRICS) + " |")
    for mode, result in results.items():
        for name, pairs in result["problems"].items():
            if pairs and args.examples:
                print(f"\n{mode}, {name} ({len(pairs)}):")
                for answer, found in pairs[: args.examples]:
                    print(f"  {answer['id'][:36]:36} {found}  {' '.join(answer['text'].split())[:160]}")
    print(json.dumps({mode: result["metrics"] for mode, result in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
