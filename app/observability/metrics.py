"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn, `gunicorn.conf.py` sets PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client: every worker then writes its samples to files in that folder and `/metrics`
(answered by any one worker) adds up the files of all workers. Without it (the Flask test client,
`flask shell`) the process's ordinary registry is used.

What is measured (names as exposed):

| metric | type | labels |
|---|---|---|
| `http_request_duration_seconds` | histogram | `method`, `route` (the URL rule), `status` |
| `chat_first_token_seconds` | histogram | `source` (gemini, offline, cache) |
| `chat_retrieval_seconds` | histogram | |
| `chat_turns_total` | counter | `status`, `source` |
| `chat_active_streams` | gauge (sum over live workers) | |
| `answer_cache_lookups_total` | counter | `result` (hit, miss) |
| `gemini_calls_total` | counter | `kind` (answer, completion, embedding), `code` (ok, 429, timeout, ...) |
| `gemini_errors_total` | counter | `kind`, `code` (the code the reader gets: quota_exhausted, ...) |
| `gemini_tokens_total` | counter | `kind`, `type` (prompt, completion) |
| `db_pool_checked_out` | gauge (sum over live workers) | |
| `db_pool_checked_out_peak` | gauge (max over workers) | |

For an SSE answer, the request duration is the time to the response headers (the first piece of
the answer is awaited before them); the whole answer is in `chat_turns_total` and the chat log.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.services.observer import Observer, TurnReport

log = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from request to response headers, by route (URL rule) and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
FIRST_TOKEN_SECONDS = Histogram(
    "chat_first_token_seconds",
    "Time from the question's arrival to the answer's first piece.",
    ["source"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
RETRIEVAL_SECONDS = Histogram(
    "chat_retrieval_seconds",
    "Time to find the passages for a question (query embedding included when configured).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CHAT_TURNS = Counter("chat_turns", "Chat turns ended, by status and answer source.", ["status", "source"])
ACTIVE_STREAMS = Gauge("chat_active_streams", "Answers being streamed now.", multiprocess_mode="livesum")
CACHE_LOOKUPS = Counter(
    "answer_cache_lookups", "Answer cache lookups of first-turn general questions.", ["result"]
)
GEMINI_CALLS = Counter("gemini_calls", "HTTP attempts to Gemini, by kind and outcome.", ["kind", "code"])
GEMINI_ERRORS = Counter(
    "gemini_errors", "Gemini requests that failed for good (after retries, or mid-stream).", ["kind", "code"]
)
GEMINI_TOKENS = Counter("gemini_tokens", "Tokens Gemini reported as used.", ["kind", "type"])
CHECKPOINTS = Counter(
    "chat_checkpoints",
    "Transactions saving the text so far of answers in progress (one per worker per round).",
)
CHECKPOINT_ROWS = Counter("chat_checkpoint_rows", "Answers in progress whose text so far was saved.")
DB_CHECKED_OUT = Gauge("db_pool_checked_out", "Database connections in use now.", multiprocess_mode="livesum")
DB_CHECKED_OUT_PEAK = Gauge(
    "db_pool_checked_out_peak",
    "Most database connections one worker had in use at once.",
    multiprocess_mode="max",
)


def render() -> tuple[bytes, str]:
    """The metrics page (all workers' samples in multiprocess mode) and its content type."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record one HTTP request."""
    REQUEST_SECONDS.labels(method, route, str(status)).observe(seconds)


def _safe(method: Any) -> Any:
    # A metrics hiccup (a full disk under the multiprocess folder) must never break an answer.
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            log.debug("metrics update failed", exc_info=True)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class MetricsObserver(Observer):
    """Turns the services' events into the metrics above (the chat log line is `ChatLogObserver`'s)."""

    @_safe
    def answer_cache_lookup(self, hit: bool) -> None:
        CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()

    @_safe
    def retrieval_finished(self, seconds: float) -> None:
        RETRIEVAL_SECONDS.observe(seconds)

    @_safe
    def stream_opened(self) -> None:
        ACTIVE_STREAMS.inc()

    @_safe
    def first_token(self, seconds: float, source: str) -> None:
        FIRST_TOKEN_SECONDS.labels(source).observe(seconds)

    @_safe
    def turn_finished(self, report: TurnReport, *, streamed: bool) -> None:
        if streamed:
            ACTIVE_STREAMS.dec()
        source = "cache" if report.cached else (report.answerer.split(":", 1)[0] or "unknown")
        CHAT_TURNS.labels(report.status, source).inc()

    @_safe
    def answers_checkpointed(self, rows: int) -> None:
        CHECKPOINTS.inc()
        CHECKPOINT_ROWS.inc(rows)

    @_safe
    def gemini_call(self, kind: str, code: str, seconds: float) -> None:
        GEMINI_CALLS.labels(kind, code).inc()

    @_safe
    def gemini_failure(self, kind: str, code: str) -> None:
        GEMINI_ERRORS.labels(kind, code).inc()

    @_safe
    def gemini_tokens(self, kind: str, prompt: int | None, completion: int | None) -> None:
        if prompt:
            GEMINI_TOKENS.labels(kind, "prompt").inc(prompt)
        if completion:
            GEMINI_TOKENS.labels(kind, "completion").inc(completion)


class _PoolWatcher:
    """Counts this process's checked-out database connections (SQLAlchemy pool events)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak = 0

    def checkout(self, *_: Any) -> None:
        with self._lock:
            self.in_use += 1
            if self.in_use > self.peak:
                self.peak = self.in_use
                DB_CHECKED_OUT_PEAK.set(self.peak)
        DB_CHECKED_OUT.inc()

    def checkin(self, *_: Any) -> None:
        with self._lock:
            self.in_use -= 1
        DB_CHECKED_OUT.dec()


def watch_pool(engine: Any) -> None:
    """Keep `db_pool_checked_out` (and its peak) up to date for `engine`."""
    from sqlalchemy import event

    watcher = _PoolWatcher()
    event.listen(engine, "checkout", watcher.checkout)
    event.listen(engine, "checkin", watcher.checkin)
