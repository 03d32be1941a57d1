"""Failures a service reports in terms the API can pass on to the reader, and the codes that name
them (every error code the service sends or stores is an `ErrorCode`)."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable machine-readable error codes: the `error` of an error body, the `code` of an
    `error` event, a stored answer's `error_code`. The values are the API's contract; a StrEnum
    so they go on the wire, into the database and into logs as the plain strings."""

    # A request the API refuses (app/api/errors.py, and the gunicorn worker's own error pages).
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    URI_TOO_LONG = "uri_too_long"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    EXPECTATION_FAILED = "expectation_failed"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_STREAMS = "too_many_streams"
    HEADERS_TOO_LARGE = "headers_too_large"
    NOT_IMPLEMENTED = "not_implemented"
    UNAVAILABLE = "unavailable"
    ERROR = "error"  # a status the API has no name for
    # The service itself: a dependency, a turn that could not finish.
    INTERNAL_ERROR = "internal_error"
    DATABASE_UNAVAILABLE = "database_unavailable"
    INDEX_NOT_READY = "index_not_ready"
    INDEX_UNAVAILABLE = "index_unavailable"
    CLIENT_DISCONNECTED = "client_disconnected"  # the reader went away mid-answer
    SHUTDOWN = "shutdown"  # this worker stopped mid-answer and cut the turn
    WORKER_STOPPED = "worker_stopped"  # a worker died mid-answer; a sweep found its turn
    # Gemini's, from app/services/providers (GEMINI_ERRORS).
    QUOTA_EXHAUSTED = "quota_exhausted"
    MODEL_MISCONFIGURED = "model_misconfigured"
    MODEL_UNAVAILABLE = "model_unavailable"
    MODEL_ERROR = "model_error"
    TIMEOUT = "timeout"
    STREAM_INTERRUPTED = "stream_interrupted"
    EMBEDDING_FAILED = "embedding_failed"


# The codes that mean Gemini failed. Listed, not inferred: a code added above is not Gemini's
# unless it is added here too (`flask report` counts Gemini's failures with this).
GEMINI_ERRORS = frozenset(
    {
        ErrorCode.QUOTA_EXHAUSTED,
        ErrorCode.MODEL_MISCONFIGURED,
        ErrorCode.MODEL_UNAVAILABLE,
        ErrorCode.MODEL_ERROR,
        ErrorCode.TIMEOUT,
        ErrorCode.STREAM_INTERRUPTED,
        ErrorCode.EMBEDDING_FAILED,
    }
)


class ServiceUnavailable(Exception):
    """Something the answer needs is unavailable now.

    `code` is machine-readable (`database_unavailable`, `index_not_ready`, `quota_exhausted`, ...),
    `message` is safe to show a reader (it never carries upstream text, URLs or keys),
    `http_status` is what the request should get if nothing was streamed yet (429 or 503), and
    `retry_after` is in seconds when known.
    """

    def __init__(
        self, code: ErrorCode, message: str, http_status: int = 503, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
