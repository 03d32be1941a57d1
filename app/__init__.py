"""The chat backend for a Docusaurus book: a Flask app factory that reads like a table of contents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider

from app.config import ConfigError, Settings, load_settings, prepare_instance_path
from app.tuning import Tuning
from app.version import __version__

__all__ = ["ConfigError", "__version__", "create_app"]


def create_app(config: Settings | Mapping[str, Any] | None = None, tuning: Tuning | None = None) -> Flask:
    """Build the app from settings (default: read once from the environment and `.env`).

    `config` may be a ready `Settings` or a mapping of overrides (tests); `tuning` replaces the
    service's constants (default `Tuning()`: tests and benchmarks pass their own). Raises
    `ConfigError` with a one-line, value-free message when a setting is malformed.
    """
    settings = config if isinstance(config, Settings) else load_settings(**dict(config or {}))
    tuning = tuning or Tuning()
    prepare_instance_path(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_url,
        MAX_CONTENT_LENGTH=tuning.max_request_bytes,
    )
    # app.json is Flask's DefaultJSONProvider (json_provider_class is left as it is).
    cast(DefaultJSONProvider, app.json).sort_keys = False
    app.extensions["tuning"] = tuning  # the HTTP layer's constants (stream keep-alive, limits)

    configure_logging(settings)
    register_extensions(app, settings)
    register_services(app, settings, tuning)
    register_blueprints(app)
    register_security(app, settings, tuning)
    register_error_handlers(app)
    register_shell_context(app)
    register_commands(app)
    register_observability(app, settings)
    register_retention(app)
    return app


def configure_logging(settings: Settings) -> None:
    """Logs to stderr at LOG_LEVEL, with every configured secret redacted."""
    from app.logging_setup import configure_logging as configure

    secrets = [
        s.get_secret_value() for s in (settings.gemini_api_key, settings.qdrant_api_key) if s is not None
    ]
    password = _database_password(settings)
    if password:
        secrets.append(password)
    if settings.redis_password:
        secrets.append(settings.redis_password)
    configure(settings.log_level_number, secrets, json_lines=settings.log_format == "json")


def register_extensions(app: Flask, settings: Settings) -> None:
    """Database, migrations and CORS."""
    from app.api.security import CORS_EXPOSE_HEADERS, CORS_SUPPORTS_CREDENTIALS, check_cors
    from app.database import (
        engine_options,
        install_client_deadlines,
        install_postgres_session_settings,
        install_sqlite_pragmas,
    )
    from app.extensions import cors, db, migrate

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()))
    with app.app_context():
        install_sqlite_pragmas(db.engine)
        install_postgres_session_settings(db.engine)
        install_client_deadlines(db.engine)
    # Only the API is cross-origin; no credentials, so a "*" origin can never leak cookies.
    check_cors(settings.allowed_origins, CORS_SUPPORTS_CREDENTIALS)

    # API answers differ by Origin (echoed in Access-Control-Allow-Origin, even for "*", or left out),
    # so a shared cache must key on it. Flask-CORS says so only when two or more origins are listed;
    # registered before it, this runs after it.
    @app.after_request
    def vary_on_origin(response: Response) -> Response:
        if request.path.startswith("/api/"):
            response.vary.add("Origin")
        return response

    cors.init_app(
        app,
        resources={r"/api/*": {"origins": settings.allowed_origins}},
        supports_credentials=CORS_SUPPORTS_CREDENTIALS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )


def register_services(app: Flask, settings: Settings, tuning: Tuning) -> None:
    """The Flask-free services, built once per process with `tuning` (metrics observed, schema guarded)."""
    from app.database import SchemaMigrator
    from app.extensions import db
    from app.observability.metrics import MetricsObserver
    from app.observability.request_log import ChatLogObserver
    from app.services.container import build_services
    from app.services.observer import ObserverGroup

    observer = ObserverGroup(MetricsObserver(), ChatLogObserver())
    with app.app_context():
        app.extensions["services"] = build_services(
            settings, db.engine, observer=observer, schema=SchemaMigrator(app), tuning=tuning
        )


def register_blueprints(app: Flask) -> None:
    """One blueprint per concern."""
    from app.api import chat, conversations, docs_ui, feedback, health, openapi, root, widget

    app.register_blueprint(root.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(conversations.bp)
    app.register_blueprint(feedback.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(docs_ui.bp)
    app.register_blueprint(widget.bp)


def register_security(app: Flask, settings: Settings, tuning: Tuning) -> None:
    """Client identity behind proxies, rate limits, the stream cap, security headers."""
    from app.api.security import install

    install(app, settings, tuning)


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as the same small JSON shape."""
    from app.api.errors import register

    register(app)


def register_shell_context(app: Flask) -> None:
    """`flask shell` starts with the models, the session, the index and the services."""
    from app import models
    from app.extensions import db

    def context() -> dict[str, Any]:
        services = app.extensions["services"]
        return {
            "db": db,
            "session": db.session,
            "Conversation": models.Conversation,
            "Message": models.Message,
            "Feedback": models.Feedback,
            "services": services,
            "settings": services.settings,
            "index": services.index,
            "retriever": services.retriever,
            "answerer": services.answerer,
            "chat": services.chat,
            "store": services.store,
            "feedback": services.feedback,
        }

    app.shell_context_processor(context)


def register_commands(app: Flask) -> None:
    """`flask ingest` and friends (`flask db ...` comes from Flask-Migrate)."""
    from app.cli import register

    register(app)


def register_observability(app: Flask, settings: Settings) -> None:
    """Request ids and the request log, request metrics, database pool gauges, GET /metrics."""
    from app.api import metrics
    from app.extensions import db
    from app.observability import request_log
    from app.observability.metrics import watch_pool

    request_log.install(app)
    with app.app_context():
        watch_pool(db.engine)
    if settings.metrics_enabled:
        app.register_blueprint(metrics.bp)
        limiter = app.extensions.get("rate_limiter")
        if limiter is not None:  # a scraper must never be rate-limited into gaps
            limiter.exempt(metrics.bp)


def register_retention(app: Flask) -> None:
    """With RETENTION_DAYS, requests give the purge check a chance (at most hourly, off-thread):
    a Space that sleeps has no clock, but it wakes on requests."""
    retention = app.extensions["services"].retention
    if retention is None:
        return

    @app.before_request
    def _check_retention() -> None:
        retention.maybe_start()


def _migrations_dir() -> Any:
    from app.config import PROJECT_ROOT

    return PROJECT_ROOT / "migrations"


def _database_password(settings: Settings) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(settings.sqlalchemy_url).password
