"""Ingestion: time and embedding requests for a Docusaurus docs folder, first run and unchanged re-run.

    python -m bench.ingest [--docs PATH]

By default the Docusaurus docs corpus (../shared/corpora/docusaurus-docs, fetched by
scripts/fetch_corpus.py when missing).

Indexes the folder into a new embedded index twice (the second run finds nothing changed), once
keyword-only (no GEMINI_API_KEY) and once hybrid with embeddings from the fake Gemini API running
as its own process (it answers at once: add Gemini's real latency per request yourself). This is
the code `flask ingest` runs, timed in-process (the command adds its own start-up, see
bench.cold_start). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench._common import FAKE_KEY, emit, ensure_corpus, fake_gemini, machine


def docs_folder(path: Path) -> Path:
    return path / "docs" if (path / "docs").is_dir() else path


def run(docs: Path, **settings: object) -> list[dict]:
    from app.config import load_settings
    from app.services.container import make_ingester

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        config = load_settings(instance_path=Path(tmp), docs_path=docs, qdrant_url=None, **settings)
        for name in ("first run", "unchanged re-run"):
            started = time.perf_counter()
            summary = make_ingester(config).ingest(docs)
            seconds = time.perf_counter() - started
            rows.append({"run": name, "seconds": round(seconds, 2), **summary.as_dict()})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=None, help="default: the Docusaurus docs corpus")
    args = parser.parse_args(argv)
    args.docs = args.docs or ensure_corpus()
    docs = docs_folder(args.docs)

    keyword = run(docs)
    with fake_gemini() as fake:
        hybrid = run(docs, gemini_api_key=FAKE_KEY, gemini_base_url=fake.base_url)  # 768 dims
        batches = [r for r in fake.requests if r.method_name == "batchEmbedContents"]
    results = [{"mode": "keyword only", **r} for r in keyword] + [
        {"mode": "hybrid (fake Gemini, 768 dims)", **r} for r in hybrid
    ]
    rows = [
        [
            r["mode"],
            r["run"],
            r["files"],
            r["chunks"],
            r["added"] + r["updated"],
            r["seconds"],
            r["embedding_requests"],
        ]
        for r in results
    ]
    emit(
        f"Ingestion of {args.docs}",
        ["index", "run", "files", "chunks", "written", "seconds", "embedding requests"],
        rows,
        {
            "bench": "ingest",
            "machine": machine(),
            "docs": str(args.docs),
            "results": results,
            "embedding_requests_seen_by_fake": len(batches),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
