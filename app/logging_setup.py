"""Logging to stdout (Hugging Face shows stdout in the Space's Logs panel)."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces any configured secret value that slips into a log record with '***'."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = message
            for secret in self.secrets:
                redacted = redacted.replace(secret, "***")
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def configure_logging(level: int, secrets: list[str]) -> None:
    """Send the app's logs to stdout at `level`, with secrets redacted (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_chat_handler", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler._chat_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
        handler.removeFilter(old)
    handler.addFilter(RedactSecrets(secrets))
    # Library chatter that would drown the service's own lines at INFO.
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "google_genai"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
