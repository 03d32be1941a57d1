"""The service's configuration: one settings object, read once from the environment and `.env`.

Every variable has a default that serves the embedded mode (SQLite + embedded Qdrant + offline
answers), so a fresh checkout runs with no keys. A malformed value raises `ConfigError` whose
message is one line naming the variable and what is wrong, never its value (values may be secrets).

Only what an operator must choose per deployment is a setting (24 of them, docs/configuration.md).
Tuning values (pool sizes, timeouts, retries, cache sizes, secondary rate limits) are constants
next to the code they tune, each with the reason for its value; gunicorn's own settings come
through gunicorn's GUNICORN_CMD_ARGS and WEB_CONCURRENCY.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Drivers the code is tested on; anything else is a configuration mistake, not a feature.
_SUPPORTED_DATABASES = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg2"}


class ConfigError(Exception):
    """A setting is missing or malformed; the message is safe to print (it holds no values)."""


class Settings(BaseSettings):
    """Everything the service reads from its environment, grouped by concern."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # --- where the service keeps its files -------------------------------------------------
    instance_path: Path = Field(
        default=PROJECT_ROOT / "instance",
        description="Folder for the SQLite database, the embedded index and lock files.",
    )

    # --- database ---------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; postgres:// and postgresql:// (Neon) or sqlite:///path. "
        "Default: SQLite at instance/chat.db.",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="Days a conversation is kept after its last message; unset = forever. "
        "The service purges older ones by itself, at most once a day.",
    )

    # --- the book and its index ---------------------------------------------------------------
    docs_path: Path = Field(
        default=PROJECT_ROOT / "docs",
        description="The Docusaurus docs folder indexed at start-up in embedded mode.",
    )
    book_site_url: str = Field(default="", description="The book's site URL, for source links.")
    book_route_base_path: str = Field(default="/", description="Docusaurus routeBasePath.")
    qdrant_url: str | None = Field(default=None, description="Qdrant Cloud URL; unset = embedded.")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = Field(default="docusaurus-book", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    index_on_start: bool = Field(
        default=True,
        description="In embedded mode, bring the index of DOCS_PATH up to date at start-up.",
    )

    # --- answers ------------------------------------------------------------------------------
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-3.5-flash"
    gemini_embedding_model: str = "gemini-embedding-001"
    gemini_base_url: str | None = None
    gemini_fallback: bool = Field(
        default=True,
        description="When Gemini fails before its first token, answer with the extractive answerer "
        "(false: answer 429/503 instead).",
    )

    # --- HTTP: who may call and frame the service -----------------------------------------------
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default=["http://localhost:3000", "http://localhost:8000"],
        description="Comma-separated browser origins allowed to call the API.",
    )
    port: int = Field(default=7860, ge=1, le=65535)
    frame_ancestors: Annotated[list[str], NoDecode] = Field(
        default=["https://huggingface.co"],
        description="Origins that may show the service's pages in a frame (besides itself).",
    )

    # --- abuse limits -------------------------------------------------------------------------
    rate_limit_chat: str = Field(
        default="10/minute;100/hour",
        description="POST /api/chat per client IP; limits separated by ';'. Empty = no limit.",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL shared by all workers for the limits; unset = in memory.",
    )
    proxy_hops: int = Field(
        # A Hugging Face Space (which sets SPACE_ID) sits behind one proxy; anywhere else, trust
        # no X-Forwarded-For unless told to, so a client cannot choose its own address.
        default_factory=lambda: 1 if os.environ.get("SPACE_ID") else 0,
        ge=0,
        le=5,
        description="Proxies in front of the service whose X-Forwarded-For is trusted (1 on a Space).",
    )

    # --- logs and metrics ---------------------------------------------------------------------
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per log line; text: for humans."
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at GET /metrics.")
    # Traffic, Gemini calls and token counts are not for anyone on a public Space: without a
    # token /metrics is not served (404); with one, only `Authorization: Bearer <token>` gets it.
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token GET /metrics requires; unset: /metrics is not served."
    )

    @field_validator("rate_limit_chat")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        value = value.strip()
        if value:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError("is not a rate limit like 10/minute;100/hour") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        raw = value.get_secret_value().strip()
        try:
            parts = urlsplit(raw)
            valid = parts.scheme in ("redis", "rediss") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            valid = False
        if not valid:
            raise ValueError("must be a URL like redis://[:password@]host:6379/0 (or rediss://)")
        return SecretStr(raw)

    @field_validator("frame_ancestors")
    @classmethod
    def _check_frame_ancestors(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"{origin!r} is not an origin like https://huggingface.co")
        return [origin.rstrip("/") for origin in origins]

    @property
    def redis_label(self) -> str | None:
        """REDIS_URL with its password hidden, for logs and health output."""
        if self.redis_url is None:
            return None
        parts = urlsplit(self.redis_url.get_secret_value())
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        if parts.username or parts.password:
            netloc = f"{parts.username or ''}:***@{netloc}"
        return f"{parts.scheme}://{netloc}{parts.path}"

    @property
    def redis_password(self) -> str | None:
        """The password in REDIS_URL (secret: only for log redaction)."""
        return urlsplit(self.redis_url.get_secret_value()).password if self.redis_url else None

    @field_validator("retention_days", mode="before")
    @classmethod
    def _empty_retention_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("allowed_origins", "frame_ancestors", mode="before")
    @classmethod
    def _split_on_commas(cls, value: object) -> object:
        # Comma-separated in the environment (a list in code and tests).
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        cleaned = []
        for origin in origins:
            if origin == "*":
                cleaned.append(origin)
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{origin!r} is not an origin like https://book.example.com")
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"{origin!r} has a path; an origin is scheme://host[:port]")
            cleaned.append(f"{parts.scheme}://{parts.netloc}")
        return cleaned

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(normalise_database_url(value.get_secret_value().strip()))

    @field_validator("qdrant_url", "gemini_base_url", "book_site_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if not value:
            return None if value is None else ""
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.strip().rstrip("/")

    # --- derived values -------------------------------------------------------------------------
    @property
    def sqlalchemy_url(self) -> str:
        """The database URL to hand to SQLAlchemy (secret: never log it; see `database_label`)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.instance_path / 'chat.db'}"

    @property
    def database_label(self) -> str:
        """The database URL with its password hidden, for logs and health output."""
        return make_url(self.sqlalchemy_url).render_as_string(hide_password=True)

    @property
    def index_path(self) -> Path:
        """Where the embedded index lives."""
        return self.instance_path / "qdrant"

    @property
    def embedded_index(self) -> bool:
        """True when the index is the in-process engine rather than Qdrant Cloud."""
        return not self.qdrant_url

    @property
    def gemini_enabled(self) -> bool:
        """True when answers and embeddings come from Gemini."""
        return self.gemini_api_key is not None and bool(self.gemini_api_key.get_secret_value())

    @property
    def log_level_number(self) -> int:
        """The `logging` module's number for LOG_LEVEL."""
        return logging.getLevelName(self.log_level)


def normalise_database_url(raw: str) -> str:
    """Check a database URL and return the form SQLAlchemy needs (`postgres://` → psycopg2)."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "is not a database URL (expected postgresql://user:pass@host/db or sqlite:///path)"
        ) from None
    backend = url.get_backend_name()
    if backend == "postgres":  # Heroku/Neon spelling that SQLAlchemy 2 no longer accepts
        backend = "postgresql"
    if backend not in _SUPPORTED_DATABASES:
        raise ValueError(f"database {backend!r} is not supported (use postgresql or sqlite)")
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername=_SUPPORTED_DATABASES["postgresql"])
    if backend == "postgresql" and not url.host and not url.query.get("host"):
        raise ValueError("has no host (expected postgresql://user:pass@host/db)")
    if backend == "postgresql" and not url.database:
        raise ValueError("has no database name (expected postgresql://user:pass@host/db)")
    return url.render_as_string(hide_password=False)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; raise `ConfigError` with one line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def prepare_instance_path(settings: Settings) -> Path:
    """Create INSTANCE_PATH if needed and check the service can write there (a read-only or
    root-owned folder in a container); `ConfigError` naming the folder otherwise."""
    import tempfile

    path = settings.instance_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"INSTANCE_PATH: cannot create or write files in {path} ({problem}); "
            "point it at a folder this user can write"
        ) from None
    return path


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's report into 'VARIABLE: what is wrong' lines, without the values."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{variable}: {message}")
    return "; ".join(lines)
