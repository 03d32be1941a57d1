"""What to do when a call to Gemini fails: retry or not, after how long, what the reader is told,
and when to stop calling for a while (the circuit breaker)."""

from __future__ import annotations

import logging
import math
import re
import threading
import time

import httpx2
from google.genai import errors
from urllib3 import exceptions as urllib3_errors

from app.services.answering.base import AnswerUnavailable
from app.services.errors import ErrorCode

log = logging.getLogger("app.services.providers.gemini")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}

# Transport failures of both clients: httpx2 (the SDK's calls) and urllib3 (the stream and the
# query embedding, gemini_stream.py). urllib3's refused or unresolvable connection is a subclass
# of its connect timeout, so it is told apart first.
_UNREACHABLE = (httpx2.ConnectError, urllib3_errors.NewConnectionError)
_TIMEOUT = (httpx2.TimeoutException, urllib3_errors.TimeoutError)
_TRANSPORT = (httpx2.TransportError, urllib3_errors.HTTPError)


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, _TIMEOUT) and not isinstance(exc, _UNREACHABLE)


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one trial through after `cooldown`.

    While open, calls fail at once: no quota is spent on an upstream that is down, and health can
    say "degraded" from this state without probing.
    """

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        """closed | open | half-open."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if time.monotonic() - self._opened_at >= self.cooldown else "open"

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def allow(self) -> bool:
        """May a call go out now?"""
        return self.state != "open"

    def record_success(self) -> None:
        """A call worked: close the breaker."""
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def record_failure(self) -> None:
        """A call failed after its retries."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._opened_at = time.monotonic()

    def retry_after(self) -> int:
        """Seconds until a trial call is allowed."""
        with self._lock:
            if self._opened_at is None:
                return 0
            return max(1, math.ceil(self.cooldown - (time.monotonic() - self._opened_at)))


def retry_decision(exc: BaseException) -> tuple[bool, float | None]:
    """(retry?, the server's requested delay in seconds if it gave one)."""
    if isinstance(exc, errors.APIError):
        return (exc.code or 0) in RETRYABLE_STATUS, server_delay(exc)
    if isinstance(exc, _TIMEOUT + _UNREACHABLE):
        return True, None
    return False, None


def server_delay(exc: errors.APIError) -> float | None:
    """RetryInfo.retryDelay ("7s", "0.5s") from the body, else the Retry-After header."""
    details = exc.details if isinstance(exc.details, dict) else {}
    for detail in (details.get("error") or {}).get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"([\d.]+)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    response = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    if header and header.strip().isdigit():
        return float(header.strip())
    return None


def outcome_code(exc: BaseException) -> str:
    """A metric label for a failed attempt: the HTTP status, or the kind of transport failure."""
    if isinstance(exc, errors.APIError):
        return str(exc.code or "error")
    if _timed_out(exc):
        return "timeout"
    if isinstance(exc, _TRANSPORT):
        return "transport"
    return "error"


def describe(exc: BaseException) -> str:
    """A log-safe description: class and status, never the message (it can echo the prompt)."""
    if isinstance(exc, errors.APIError):
        return f"{type(exc).__name__} {exc.code} {exc.status}"
    return type(exc).__name__


def classify(exc: BaseException, *, streaming: bool) -> AnswerUnavailable:
    """Turn an SDK or transport exception into a failure the reader can be told about."""
    if isinstance(exc, AnswerUnavailable):
        return exc
    if isinstance(exc, errors.APIError):
        code = exc.code or 0
        _, server_delay = retry_decision(exc)
        retry_after = math.ceil(server_delay) if server_delay else None
        if code == 429:
            return AnswerUnavailable(
                ErrorCode.QUOTA_EXHAUSTED,
                "The assistant has used up its Gemini quota for now; please try again later.",
                http_status=429,
                retry_after=retry_after,
            )
        if code in (400, 401, 403, 404):
            log.error("Gemini rejected the request (HTTP %s): check GEMINI_API_KEY and GEMINI_MODEL", code)
            return AnswerUnavailable(ErrorCode.MODEL_MISCONFIGURED, "The answering service is misconfigured.")
        return AnswerUnavailable(
            ErrorCode.MODEL_UNAVAILABLE,
            "The answering service is unavailable right now; please try again shortly.",
            retry_after=retry_after,
        )
    if _timed_out(exc):
        return AnswerUnavailable(ErrorCode.TIMEOUT, "The answering service took too long to respond.")
    if streaming and isinstance(exc, _TRANSPORT) and not isinstance(exc, _UNREACHABLE):
        return AnswerUnavailable(
            ErrorCode.STREAM_INTERRUPTED, "The connection to the answering service was lost."
        )
    if isinstance(exc, _TRANSPORT):
        return AnswerUnavailable(
            ErrorCode.MODEL_UNAVAILABLE, "The answering service cannot be reached right now."
        )
    return AnswerUnavailable(ErrorCode.MODEL_ERROR, "The answering service failed unexpectedly.")
