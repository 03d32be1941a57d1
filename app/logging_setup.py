"""Logging to stderr, so that stdout holds only what a command prints (`flask ingest --dry-run`,
`flask report --json`, `flask routes`); the Space's Logs panel shows both streams.

LOG_FORMAT=json (the default) writes one JSON object per line: time, level, logger, pid,
message, the request id of the request being served (if any), and the structured fields a log
call passes as `extra={"fields": {...}}` (the request and chat-turn lines). LOG_FORMAT=text writes
the classic line with those fields appended as key=value. gunicorn's own lines ("Booting
worker", "Listening at", its access log when enabled) take the same JSON form through
gunicorn_logger_class.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

# The id of the request this thread is serving (set by app.observability.request_log); every log
# line carries it.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RedactSecrets(logging.Filter):
    """Replaces any configured secret value that slips into a log record with '***'."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
            fields = getattr(record, "fields", None)
            if isinstance(fields, dict):
                record.fields = {
                    key: self.redact(value) if isinstance(value, str) else value
                    for key, value in fields.items()
                }
        return True

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by '***'."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, pid, message, request_id, fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, then the request id and structured fields as key=value."""

    def __init__(self) -> None:
        super().__init__(_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = []
        fields = getattr(record, "fields", None)
        request_id = current_request_id.get()
        if request_id and not (isinstance(fields, dict) and "request_id" in fields):
            extras.append(f"request_id={request_id}")
        if isinstance(fields, dict):
            extras.extend(f"{key}={value}" for key, value in fields.items() if value is not None)
        if not extras:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{first} {' '.join(extras)}{newline}{rest}"


def configure_logging(level: int, secrets: list[str], json_lines: bool = False) -> None:
    """Send the app's logs to stderr at `level`, with secrets redacted (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_chat_handler", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._chat_handler = True  # type: ignore[attr-defined]  # our mark on a stdlib handler, read with getattr
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
        handler.removeFilter(old)
    handler.addFilter(RedactSecrets(secrets))
    # Library chatter that would drown the service's own lines at INFO. alembic's "setup plugin"
    # lines come from merely loading `flask db`, so every `flask` command printed them.
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "google_genai", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class JsonGunicornLogger(GunicornLogger):
    """gunicorn's logger with its error and access lines written by JsonFormatter."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's own set-up, then the JSON formatter on every handler it attached."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())


def gunicorn_logger_class(json_lines: bool) -> type[GunicornLogger]:
    """gunicorn's `logger_class`: JSON lines like the app's when LOG_FORMAT=json, else its own."""
    return JsonGunicornLogger if json_lines else GunicornLogger
