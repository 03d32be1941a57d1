"""Retrieval quality on real readers' questions, through the service's own retrieval code.

    python -m bench.eval_retrieval --docs ../shared/corpora/docusaurus-docs \
        --questions ../shared/eval/docusaurus-questions.dev.jsonl

Builds an index of DOCS in a temporary folder (keyword only without GEMINI_API_KEY; hybrid with
it), asks every question, and prints a table, then one JSON line:
{"n", "hit@1", "hit@5", "mrr@10", "section_hit@5"}. Page-level scores use `expected_files`;
section-level uses `expected_anchor` where the question has one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from app.config import load_settings
from app.services.container import make_embedder, make_ingester, make_retriever
from app.services.index import open_index


def docs_folder(path: Path) -> Path:
    """The docs folder itself: a Docusaurus site folder (with docs/ inside) is accepted too."""
    return path / "docs" if (path / "docs").is_dir() else path


def label_path(label: str, docs: Path) -> str:
    """A label's path relative to the docs folder (labels may be relative to the site folder)."""
    prefix = docs.name + "/"
    return label[len(prefix):] if label.startswith(prefix) and not (docs / label).exists() else label


def evaluate(docs: Path, questions: list[dict], *, site_url: str, route_base_path: str, show: bool) -> dict:
    """Index `docs` in a temporary folder and score every question; returns the metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            instance_path=Path(tmp), qdrant_url=None, docs_path=docs,
            book_site_url=site_url, book_route_base_path=route_base_path,
        )
        started = time.perf_counter()
        summary = make_ingester(settings).ingest(docs, site_url=site_url, route_base_path=route_base_path)
        ingest_s = time.perf_counter() - started
        retriever = make_retriever(settings, open_index(settings), make_embedder(settings))
        rows = []
        for q in questions:
            result = retriever.retrieve(q["question"], limit=20)  # enough passages for 10 pages
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
                    p.file == first_file and (p.anchor or "").lower() == anchor.lower() for p in result.passages[:5]
                )
            rows.append({"id": q["id"], "rank": rank, "section_hit": section_hit, "top": pages[:3]})
    n = len(rows)
    with_anchor = [r for r in rows if r["section_hit"] is not None]
    metrics = {
        "n": n,
        "hit@1": round(sum(1 for r in rows if r["rank"] == 1) / n, 3),
        "hit@5": round(sum(1 for r in rows if r["rank"] and r["rank"] <= 5) / n, 3),
        "mrr@10": round(sum(1 / r["rank"] for r in rows if r["rank"] and r["rank"] <= 10) / n, 3),
        "section_hit@5": round(sum(1 for r in with_anchor if r["section_hit"]) / max(1, len(with_anchor)), 3),
        "mode": "hybrid" if settings.gemini_enabled else "keyword",
        "chunks": summary.chunks,
        "ingest_s": round(ingest_s, 2),
    }
    if show:
        print(f"{'question':40} {'rank':>5} {'section':>8}  top pages")
        for r in rows:
            section = "-" if r["section_hit"] is None else ("yes" if r["section_hit"] else "no")
            print(f"{r['id'][:40]:40} {r['rank'] or '-':>5} {section:>8}  {', '.join(r['top'])}")
        print()
        print(f"{'metric':14} value")
        for key in ("n", "hit@1", "hit@5", "mrr@10", "section_hit@5", "mode", "chunks", "ingest_s"):
            print(f"{key:14} {metrics[key]}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, required=True, help="the Docusaurus docs folder")
    parser.add_argument("--questions", type=Path, required=True, help="JSONL of labelled questions")
    parser.add_argument("--site-url", default="https://docusaurus.io")
    parser.add_argument("--route-base-path", default="docs")
    parser.add_argument("--quiet", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    metrics = evaluate(docs_folder(args.docs), questions, site_url=args.site_url, route_base_path=args.route_base_path,
                       show=not args.quiet)
    print(json.dumps({k: metrics[k] for k in ("n", "hit@1", "hit@5", "mrr@10", "section_hit@5")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
