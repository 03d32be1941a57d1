"""Project commands for `flask`: ingest the book, report on readers' questions, purge old ones.

`report` and `purge` only talk to the database: they use the app's engine, never the services
(no index, no Gemini, no start-up work, no migration), so they run from a laptop against Neon.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from app.services.container import Services

if TYPE_CHECKING:
    from datetime import timedelta

    from sqlalchemy.orm import Session, sessionmaker

    from app.config import Settings


def register(app: Flask) -> None:
    """Attach the commands to `app.cli`."""
    app.cli.add_command(ingest)
    app.cli.add_command(report)
    app.cli.add_command(purge)


@click.command("ingest")
@with_appcontext
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--site-url", default=None, help="The book's site URL (default: BOOK_SITE_URL).")
@click.option(
    "--route-base-path", default=None, help="Docusaurus routeBasePath (default: BOOK_ROUTE_BASE_PATH)."
)
@click.option("--full", is_flag=True, help="Rebuild from nothing beside the live index, then switch.")
@click.option("--dry-run", is_flag=True, help="Print one JSON object per chunk; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (last line).")
def ingest(
    path: Path | None,
    site_url: str | None,
    route_base_path: str | None,
    full: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Index a Docusaurus docs folder (default: DOCS_PATH); only changed chunks are written."""
    services: Services = current_app.extensions["services"]
    settings = services.settings
    docs = path or settings.docs_path
    site = settings.book_site_url if site_url is None else site_url.rstrip("/")
    base = settings.book_route_base_path if route_base_path is None else route_base_path
    if path is not None and not dry_run and _start_up_reindexes_another_book(settings, path):
        raise click.ClickException(
            f"{path} is not DOCS_PATH ({settings.docs_path}): start-up indexes DOCS_PATH and would remove "
            "this book from the index. Make it the book with DOCS_PATH (in .env), then run `flask ingest`; "
            "or set INDEX_ON_START=false."
        )
    if dry_run or as_json:
        # Machine-readable output: keep progress lines out of stdout.
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    ingester = services.ingester()
    if dry_run:
        _, chunks = ingester.read_chunks(docs, site_url=site, route_base_path=base)
        for chunk in chunks:
            click.echo(
                json.dumps(
                    {
                        "file": chunk.file,
                        "url": chunk.url,
                        "heading": chunk.heading,
                        "anchor": chunk.anchor,
                        "tokens": chunk.tokens,
                    },
                    ensure_ascii=False,
                )
            )
        return
    summary = ingester.ingest(
        docs, site_url=site, route_base_path=base, full=full, show_progress=sys.stderr.isatty()
    )
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
    else:
        click.echo(
            f"{summary.files} files, {summary.chunks} chunks: {summary.added} added, "
            f"{summary.updated} updated, {summary.removed} removed, {summary.unchanged} unchanged; "
            f"{summary.embedding_requests} embedding requests; version {summary.version or '(unchanged)'}"
        )


def _start_up_reindexes_another_book(settings: Settings, path: Path) -> bool:
    # DOCS_PATH is the book: the embedded index is brought in line with it at every start-up, so a
    # different folder ingested by hand would be silently replaced by DOCS_PATH on the next start.
    return (
        settings.embedded_index and settings.index_on_start and path.resolve() != settings.docs_path.resolve()
    )


def _session_factory() -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    from app.extensions import db

    return sessionmaker(bind=db.engine, expire_on_commit=False)


def _period(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, timedelta]:
    from app.services.reporting import parse_period

    try:
        return value, parse_period(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("report")
@with_appcontext
@click.option(
    "--since",
    "period",
    default="7d",
    show_default=True,
    callback=_period,
    help="How far back, in UTC: 30m, 24h, 7d, 2w.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
def report(period: tuple[str, timedelta], as_json: bool) -> None:
    """What readers asked, what the book did not cover, and which answers they disliked."""
    from app.services.report_text import render_text
    from app.services.reporting import build_report

    label, span = period
    until = datetime.now(UTC)
    try:
        result = build_report(_session_factory(), until - span, until, label)
    except SQLAlchemyError as exc:
        # The class only: a driver's message may name the host. No table is ever created here.
        raise click.ClickException(
            f"cannot read the conversations ({type(exc).__name__}): is DATABASE_URL the service's "
            "database, and has the service started on it once (start-up creates the tables)?"
        ) from None
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(result), nl=False)


@click.command("purge")
@with_appcontext
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    default=None,
    help="Delete conversations whose last message is older than this many days.",
)
@click.option(
    "--conversation",
    "conversation_id",
    type=click.UUID,
    default=None,
    help="Delete this one conversation (a reader's request).",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def purge(days: int | None, conversation_id: uuid.UUID | None, dry_run: bool, as_json: bool) -> None:
    """Delete old conversations (or one) with their messages and votes, in batches."""
    from datetime import timedelta

    from app.services.conversations import ConversationNotFound
    from app.services.retention import ConversationPurger

    if (days is None) == (conversation_id is None):
        raise click.UsageError("give either --older-than DAYS or --conversation ID")
    purger = ConversationPurger(_session_factory())
    if conversation_id is not None:
        try:
            result = purger.delete_conversation(conversation_id, dry_run=dry_run)
        except ConversationNotFound:
            raise click.ClickException(f"no conversation {conversation_id}") from None
        scope = f"conversation {conversation_id}"
    else:
        assert days is not None  # exactly one of the two was given (checked above)
        cutoff = datetime.now(UTC) - timedelta(days=days)
        result = purger.purge_inactive_since(cutoff, dry_run=dry_run)
        scope = f"conversations inactive since {cutoff:%Y-%m-%d %H:%M} UTC"
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.conversations} conversations, {result.messages} messages, "
        f"{result.feedback} votes ({scope})"
    )
