"""Project commands for `flask`: ingest the book into the index."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.services.container import Services, make_ingester


def register(app: Flask) -> None:
    """Attach the commands to `app.cli`."""
    app.cli.add_command(ingest)


@click.command("ingest")
@with_appcontext
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--site-url", default=None, help="The book's site URL (default: BOOK_SITE_URL).")
@click.option("--route-base-path", default=None, help="Docusaurus routeBasePath (default: BOOK_ROUTE_BASE_PATH).")
@click.option("--full", is_flag=True, help="Rebuild from nothing beside the live index, then switch.")
@click.option("--dry-run", is_flag=True, help="Print one JSON object per chunk; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (last line).")
def ingest(
    path: Path | None, site_url: str | None, route_base_path: str | None, full: bool, dry_run: bool, as_json: bool
) -> None:
    """Index a Docusaurus docs folder (default: DOCS_PATH); only changed chunks are written."""
    services: Services = current_app.extensions["services"]
    settings = services.settings
    docs = path or settings.docs_path
    site = settings.book_site_url if site_url is None else site_url.rstrip("/")
    base = settings.book_route_base_path if route_base_path is None else route_base_path
    if dry_run or as_json:
        # Machine-readable output: keep progress lines out of stdout.
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    ingester = make_ingester(settings)
    if dry_run:
        _, chunks = ingester.read_chunks(docs, site_url=site, route_base_path=base)
        for chunk in chunks:
            click.echo(json.dumps({"file": chunk.file, "url": chunk.url, "heading": chunk.heading,
                                   "anchor": chunk.anchor, "tokens": chunk.tokens}, ensure_ascii=False))
        return
    summary = ingester.ingest(docs, site_url=site, route_base_path=base, full=full, show_progress=sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        click.echo(
            f"{summary.files} files, {summary.chunks} chunks: {summary.added} added, {summary.updated} updated, "
            f"{summary.removed} removed, {summary.unchanged} unchanged; "
            f"{summary.embedding_requests} embedding requests; version {summary.version or '(unchanged)'}"
        )
