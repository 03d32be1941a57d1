"""Failures a service reports in terms the API can pass on to the reader."""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """Something the answer needs is unavailable now.

    `code` is machine-readable (`database_unavailable`, `index_not_ready`, `quota_exhausted`, ...),
    `message` is safe to show a reader (it never carries upstream text, URLs or keys),
    `http_status` is what the request should get if nothing was streamed yet (429 or 503), and
    `retry_after` is in seconds when known.
    """

    def __init__(self, code: str, message: str, http_status: int = 503, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
