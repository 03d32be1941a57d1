"""Tuning: the service's constants, each with its reason, in one frozen object.

Tuning values are not settings (docs/configuration.md): nothing here differs between
deployments, so none is read from the environment. `create_app` builds the service with
`Tuning()` unless given another; the container hands each value to the service that uses it
(constructor arguments), and the HTTP layer reads it from the app. A test or a benchmark that needs
other values builds its own: `Tuning(token_delay_seconds=0.02)`, `dataclasses.replace(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """The constants the service is built with (defaults: the production values)."""

    # --- requests (app/__init__.py, app/api/security.py, app/api/sse.py) ---------------------------
    # Largest request body (413 beyond): a question plus a selection the widget trims to 8000
    # characters fits many times over; anything bigger is a mistake or abuse.
    max_request_bytes: int = 64 * 1024
    # Probes come from the platform at most every few seconds: 300/minute never stops one.
    rate_limit_health: str = "300/minute"
    # Pages, conversations, feedback: far above what a reader clicks, low enough to stop a scraper.
    # (RATE_LIMIT_CHAT, which protects the Gemini quota, is the operator's setting.)
    rate_limit_default: str = "120/minute"
    # A reader has one answer in progress; 8 leaves room for a few readers behind one NAT while
    # keeping one address from holding more than a small share of the worker threads.
    max_streams_per_client: int = 8
    # A stream slot is a lease held this long unless renewed, so a slot nobody will release (a
    # worker killed mid-answer, an acquire that ran when a hung Redis resumed) frees itself
    # within a minute; a JSON answer (never renewed) fits in it too.
    stream_lease_seconds: float = 60.0
    # A live stream renews its lease this often as it sends (an event or a keep-alive at least
    # every keepalive_seconds): 20 + 15 s is the longest it goes unrenewed, well inside 60.
    stream_renew_seconds: float = 20.0
    # A keep-alive comment after this much silence (0: none): proxies (the Space's, nginx's
    # default 60 s) cut idle streams after tens of seconds, and Gemini's first token can take several.
    keepalive_seconds: float = 15.0

    # --- answers (app/services/) --------------------------------------------------------------------
    # Pause between an offline answer's streamed words: none, the extractive answer is ready at
    # once and a typing pace only slows readers down (tests set one to have a stream to interrupt).
    token_delay_seconds: float = 0.0
    # First-turn answers kept per worker (LRU; 0: no cache): a few hundred kilobytes, enough for the
    # questions a book's readers repeat; keyed on the index version, so never stale.
    answer_cache_entries: int = 512

    # --- health (app/services/health.py) ------------------------------------------------------------
    # How long GET /api/health reuses a dependency's check: a probe every second costs one check
    # per 3 s, and with the deadline below a change shows within 5 s even when a check hangs.
    health_cache_seconds: float = 3.0
    # How long a probe waits for a check; one still running is reported down with "timeout".
    health_deadline_seconds: float = 2.0

    # --- Gemini (app/services/providers/gemini.py) ---------------------------------------------------
    # The index's vector size: one of the sizes Google recommends for gemini-embedding-001 (768,
    # 1536, 3072), a quarter of the largest one's memory. A change means a full re-index.
    embedding_dim: int = 768
    # Per connect/read, not per answer (the SDK has no timeout of its own): long enough for
    # Gemini's slowest first token, short enough to free a thread well before gunicorn's timeout.
    gemini_timeout_seconds: float = 30.0
    # Tries before the first token, the first included: two retries ride out a blip; more would
    # keep the reader staring at nothing when Gemini is really down (the fallback answers instead).
    gemini_max_attempts: int = 3
    # The longest single wait between tries. When Gemini asks for more (RetryInfo), the reader
    # gets 429/503 with that Retry-After at once rather than a silent wait.
    gemini_max_retry_wait_seconds: float = 8.0
