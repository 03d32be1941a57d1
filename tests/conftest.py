"""Shared fixtures: settings isolated from the developer's environment, a real database
(SQLite by default, PostgreSQL when TEST_DATABASE_URL is set), a real index, the app.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.config import Settings, normalise_database_url
from app.tuning import Tuning
from tests.support.service import parse_widget_stream  # noqa: F401  (integration tests import it from here)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_BOOK = ROOT / "tests" / "fixtures" / "book"
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "docusaurus-docs"
EVAL_QUESTIONS = SHARED / "eval" / "docusaurus-questions.dev.jsonl"

# Tests must never see the developer's keys or production database: drop every variable the
# settings read (and .env is never loaded: see make_settings).
for _name in list(Settings.model_fields) + ["GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"]:
    os.environ.pop(_name.upper(), None)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def reset_postgres(url: str) -> None:
    """Empty the test PostgreSQL database: a fresh schema, as on a new Neon branch."""
    engine = create_engine(normalise_database_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _fresh_postgres() -> None:
    if TEST_DATABASE_URL:
        reset_postgres(TEST_DATABASE_URL)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A database for one test: a new SQLite file, or the test PostgreSQL emptied of rows
    (before the test too: end-to-end services share that database and leave their rows)."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    empty_postgres_tables(TEST_DATABASE_URL)
    yield TEST_DATABASE_URL
    empty_postgres_tables(TEST_DATABASE_URL)


def empty_postgres_tables(url: str) -> None:
    """Delete every row the service stored (the schema stays)."""
    engine = create_engine(normalise_database_url(url))
    with engine.begin() as conn:
        tables = [
            name
            for name in ("feedback", "messages", "conversations", "retention_state", "worker_heartbeats")
            if conn.execute(text("SELECT to_regclass(:name)"), {"name": f"public.{name}"}).scalar()
        ]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    engine.dispose()


@pytest.fixture
def tuning() -> Tuning:
    """The tuning in-process apps are built with: health checks never cached (a test sees a change
    at once). A test that needs other values builds from it: `dataclasses.replace(tuning, ...)`."""
    return Tuning(health_cache_seconds=0)


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str):
    """Build Settings for a test: isolated instance folder, the fixture book, no .env."""

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "instance_path": tmp_path / "instance",
            "database_url": database_url,
            "docs_path": FIXTURE_BOOK,
            "book_site_url": "https://garden.example.com",
            "book_route_base_path": "/",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]  # pydantic-settings' own argument

    return build


@pytest.fixture
def make_app(make_settings, tuning):
    """Build apps like `app` from make_settings(**overrides) and `tuning` (default: the fixture's);
    each is closed after the test."""
    from app import create_app
    from app.database import upgrade_database

    built = []

    def build(tuning: Tuning = tuning, **overrides: object):
        application = create_app(make_settings(**overrides), tuning)
        built.append(application)
        upgrade_database(application)
        services = application.extensions["services"]
        services.startup.run()
        assert services.startup.state == "ready", services.startup.error
        return application

    yield build
    for application in built:
        application.extensions["services"].live_turns.stop()  # its heartbeat thread, when a chat started it
        with application.app_context():
            from app.extensions import db

            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The app on a migrated database with the fixture book indexed, start-up done."""
    return make_app()


@pytest.fixture
def runner(app):
    """A runner for the app's `flask` commands (click's CliRunner, in the app's context)."""
    return app.test_cli_runner()


FAKE_GEMINI_KEY = "AIza-test-fake-gemini-key-0001"


@pytest.fixture
def fake_gemini():
    """The fake Gemini API (tests/fakes/gemini_server.py), listening on a free port."""
    from tests.fakes.gemini_server import FakeGemini

    with FakeGemini(api_key=FAKE_GEMINI_KEY) as server:
        yield server


@pytest.fixture
def gemini_tuning(tuning) -> Tuning:
    """The fixture's tuning with short retry waits: no test sleeps through real back-off."""
    return replace(tuning, gemini_max_retry_wait_seconds=0.05)


@pytest.fixture
def make_gemini_app(make_app, fake_gemini, gemini_tuning):
    """Build an app answered by the fake Gemini (with `gemini_tuning` unless given a tuning), start-up
    done, and the fake's start-up traffic forgotten: a test asserts on its own."""

    def build(tuning: Tuning = gemini_tuning, **overrides: object):
        settings = {"gemini_api_key": FAKE_GEMINI_KEY, "gemini_base_url": fake_gemini.base_url, **overrides}
        application = make_app(tuning, **settings)
        fake_gemini.reset()
        return application

    return build


@pytest.fixture
def client(app):
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def redis_server(tmp_path: Path):
    """A redis-server of this test's own (tests/support/redis_server.py), stopped after it."""
    from tests.support.redis_server import RedisServer, redis_server_installed

    if not redis_server_installed():
        pytest.skip("redis-server is not installed")
    with RedisServer(tmp_path / "redis") as server:
        yield server
