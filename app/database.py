"""Engine options for SQLite (the embedded default) and PostgreSQL (Neon in production)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from app.config import Settings


def engine_options(settings: Settings) -> dict[str, Any]:
    """SQLAlchemy engine options suited to the configured database."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        # Several threads and worker processes share one file: wait for locks, don't fail.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {
        "pool_pre_ping": True,  # Neon closes idle connections; test before use, reconnect quietly
        "pool_recycle": settings.database_pool_recycle,
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_timeout": 10,
        # connect_timeout is a libpq client option, so Neon's pooler never sees it.
        "connect_args": {"connect_timeout": 5, "application_name": "docusaurus-chat"},
    }


def install_postgres_session_settings(engine: Engine, statement_timeout_ms: int) -> None:
    """Bound every statement's time with SET after connecting.

    Neon's pooler rejects start-up `options`, so the timeout cannot go in the URL or in
    connect_args; a SET on each new connection works behind any pooler.
    """
    if engine.dialect.name != "postgresql" or statement_timeout_ms <= 0:
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        cursor.close()
        dbapi_connection.commit()


def install_sqlite_pragmas(engine: Engine) -> None:
    """WAL lets readers and one writer work at once; foreign keys make cascades real."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def upgrade_database(app: Any) -> None:
    """Apply pending migrations (a no-op when up to date), then drop the connections.

    Called once by gunicorn's master before it forks workers; disposing the engine keeps
    the master's connections from being shared with (and corrupted by) the forked workers.
    """
    from flask_migrate import upgrade

    from app.extensions import db

    with app.app_context():
        upgrade()
        db.engine.dispose()
