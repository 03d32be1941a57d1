"""Retrieval quality on real readers' questions, through the service's own retrieval code.

    python -m bench.eval_retrieval --docs ../shared/corpora/docusaurus-docs \
        --questions ../shared/eval/docusaurus-questions.dev.jsonl \
        [--offtopic bench/offtopic_questions.jsonl] [--embeddings minilm]

Builds an index of DOCS in a temporary folder (keyword only without GEMINI_API_KEY; hybrid with
it, or with `--embeddings minilm`: all-MiniLM-L6-v2 behind the fake Gemini, see bench/README.md),
asks every question, and prints a table, then one JSON line: {"n", "hit@1", "hit@5", "mrr@10",
"section_hit@5", "refused", "ranking_miss@5", "offtopic_n", "offtopic_refused"}. Page-level
scores use `expected_files`; section-level uses `expected_anchor` where the question has one.
A real question the relevance floor refuses is counted as `refused`, apart from ranking misses
(answered, but the expected page is not in the top 5); hit@k counts both as misses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from app.config import load_settings
from app.services.container import make_embedder, make_ingester, make_retriever
from app.services.index import open_index
from app.services.retrieval import sparse
from app.services.retrieval.floor import FloorVerdict
from app.tuning import Tuning

# The figures the last line's JSON holds (and the table's first rows).
SUMMARY_METRICS = (
    "n",
    "hit@1",
    "hit@5",
    "mrr@10",
    "section_hit@5",
    "refused",
    "ranking_miss@5",
    "offtopic_n",
    "offtopic_refused",
)


def docs_folder(path: Path) -> Path:
    """The docs folder itself: a Docusaurus site folder (with docs/ inside) is accepted too."""
    return path / "docs" if (path / "docs").is_dir() else path


def label_path(label: str, docs: Path) -> str:
    """A label's path relative to the docs folder (labels may be relative to the site folder)."""
    prefix = docs.name + "/"
    return label[len(prefix) :] if label.startswith(prefix) and not (docs / label).exists() else label


def read_questions(path: Path) -> list[dict]:
    """Questions of a JSONL file (one object a line, with at least "id" and "question")."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def floor_slack(verdict: FloorVerdict | None) -> float:
    """How far a verdict is from the floor's thresholds: ≥ 0 passes them, < 0 falls short.

    The smaller of share / its threshold and strength / its threshold, minus one, with the
    thresholds of the question's class (short or long): 0.2 means 20 % above the nearer one.
    """
    if verdict is None or verdict.terms == 0:
        return -1.0
    long = verdict.terms >= sparse.FLOOR_LONG_QUESTION_TERMS
    min_share = sparse.FLOOR_MIN_SHARE_LONG if long else sparse.FLOOR_MIN_SHARE_SHORT
    min_strength = sparse.FLOOR_MIN_STRENGTH_LONG if long else sparse.FLOOR_MIN_STRENGTH_SHORT
    return round(min(verdict.share / min_share, verdict.strength / min_strength) - 1, 3)


def reader_page(choice: str, gold: list[str], page_urls: dict[str, str]) -> str | None:
    """The URL of the page the reader is on: none, the gold page, or an unrelated one (the next
    page after the gold one in sorted order that is not gold), deterministic."""
    if choice == "none" or not gold:
        return None
    if choice == "gold":
        return page_urls.get(gold[0])
    files = sorted(page_urls)
    start = files.index(gold[0]) if gold[0] in files else 0
    return next(page_urls[f] for f in files[start + 1 :] + files[: start + 1] if f not in gold)


def evaluate(
    docs: Path,
    questions: list[dict],
    *,
    site_url: str,
    route_base_path: str,
    show: bool,
    offtopic: list[dict] | None = None,
    current_page: str = "none",
    tuning: Tuning | None = None,
) -> dict:
    """Index `docs` in a temporary folder (services built with `tuning`) and score every question;
    returns the metrics."""
    offtopic = offtopic or []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            instance_path=Path(tmp),
            qdrant_url=None,
            docs_path=docs,
            book_site_url=site_url,
            book_route_base_path=route_base_path,
        )
        started = time.perf_counter()
        summary = make_ingester(settings, tuning=tuning).ingest(
            docs, site_url=site_url, route_base_path=route_base_path
        )
        ingest_s = time.perf_counter() - started
        retriever = make_retriever(open_index(settings), make_embedder(settings, tuning))
        _, chunks = make_ingester(settings, tuning=tuning).read_chunks(
            docs, site_url=site_url, route_base_path=route_base_path
        )
        page_urls = {c.file: c.url.split("#")[0] for c in chunks}
        rows = []
        for q in questions:
            page = reader_page(current_page, [label_path(f, docs) for f in q["expected_files"]], page_urls)
            result = retriever.retrieve(q["question"], limit=20, page=page)  # enough passages for 10 pages
            pages: list[str] = []
            for p in result.passages:
                if p.file not in pages:
                    pages.append(p.file)
            expected = {label_path(f, docs) for f in q["expected_files"]}
            rank = next((i + 1 for i, f in enumerate(pages) if f in expected), None)
            anchor = q.get("expected_anchor")
            first_file = label_path(q["expected_files"][0], docs)
            section_hit = None
            if anchor:
                section_hit = any(
                    p.file == first_file and (p.anchor or "").lower() == anchor.lower()
                    for p in result.passages[:5]
                )
            rows.append(
                {
                    "id": q["id"],
                    "rank": rank,
                    "section_hit": section_hit,
                    "top": pages[:3],
                    "refused": not result.passages,
                    "slack": floor_slack(result.verdict),
                    "question": q["question"],
                }
            )
        off_rows = []
        for q in offtopic:
            result = retriever.retrieve(
                q["question"], page=min(page_urls.values()) if current_page != "none" else None
            )
            off_rows.append(
                {
                    "id": q["id"],
                    "refused": not result.passages,
                    "slack": floor_slack(result.verdict),
                    "question": q["question"],
                }
            )
    n = len(rows)
    with_anchor = [r for r in rows if r["section_hit"] is not None]
    metrics = {
        "n": n,
        "hit@1": round(sum(1 for r in rows if r["rank"] == 1) / n, 3),
        "hit@5": round(sum(1 for r in rows if r["rank"] and r["rank"] <= 5) / n, 3),
        "mrr@10": round(sum(1 / r["rank"] for r in rows if r["rank"] and r["rank"] <= 10) / n, 3),
        "section_hit@5": round(sum(1 for r in with_anchor if r["section_hit"]) / max(1, len(with_anchor)), 3),
        "refused": sum(1 for r in rows if r["refused"]),
        "ranking_miss@5": sum(1 for r in rows if not r["refused"] and not (r["rank"] and r["rank"] <= 5)),
        "offtopic_n": len(off_rows),
        "offtopic_refused": sum(1 for r in off_rows if r["refused"]),
        "mode": "hybrid" if settings.gemini_enabled else "keyword",
        "chunks": summary.chunks,
        "ingest_s": round(ingest_s, 2),
        "rows": rows,
        "offtopic_rows": off_rows,
    }
    if show:
        print(f"{'question':40} {'rank':>5} {'section':>8} {'floor':>7}  top pages")
        for r in rows:
            section = "-" if r["section_hit"] is None else ("yes" if r["section_hit"] else "no")
            rank = "REFUSED" if r["refused"] else (r["rank"] or "-")
            print(f"{r['id'][:40]:40} {rank:>5} {section:>8} {r['slack']:>7}  {', '.join(r['top'])}")
        print()
        print(f"{'metric':16} value")
        for key in (*SUMMARY_METRICS, "mode", "chunks", "ingest_s"):
            print(f"{key:16} {metrics[key]}")
        print()
        print("Closest calls of the relevance floor (slack: ≥ 0 passes its thresholds, < 0 falls short):")
        for label, group in (
            ("real, answered", [r for r in rows if not r["refused"]]),
            ("real, refused", [r for r in rows if r["refused"]]),
            ("off-topic, answered", [r for r in off_rows if not r["refused"]]),
            ("off-topic, refused", [r for r in off_rows if r["refused"]]),
        ):
            closest = sorted(group, key=lambda r: r["slack"], reverse=label.endswith("refused"))[:3]
            for r in closest:
                print(f"  {label:20} {r['slack']:>7}  {r['question'][:70]}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, required=True, help="the Docusaurus docs folder")
    parser.add_argument("--questions", type=Path, required=True, help="JSONL of labelled questions")
    parser.add_argument(
        "--offtopic", type=Path, default=None, help="JSONL of questions the book does not cover"
    )
    parser.add_argument(
        "--embeddings",
        choices=("env", "minilm"),
        default="env",
        help="env: hybrid only with GEMINI_API_KEY set; minilm: hybrid with all-MiniLM-L6-v2",
    )
    parser.add_argument("--site-url", default="https://docusaurus.io")
    parser.add_argument("--route-base-path", default="docs")
    parser.add_argument(
        "--current-page",
        choices=("none", "gold", "unrelated"),
        default="none",
        help="the page the reader is on: none, the gold page, or an unrelated page",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    questions = read_questions(args.questions)
    offtopic = read_questions(args.offtopic) if args.offtopic else []
    context: contextlib.AbstractContextManager[Tuning] = contextlib.nullcontext(Tuning())
    if args.embeddings == "minilm":
        from bench._embeddings import embeddings

        context = embeddings("hybrid")
    with context as tuning:
        metrics = evaluate(
            docs_folder(args.docs),
            questions,
            site_url=args.site_url,
            route_base_path=args.route_base_path,
            show=not args.quiet,
            offtopic=offtopic,
            current_page=args.current_page,
            tuning=tuning,
        )
    print(json.dumps({k: metrics[k] for k in SUMMARY_METRICS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
