"""One Redis connection pool per app for the rate limiter and the stream cap, behind a circuit
breaker: after a timeout or a connection error, this worker stops asking Redis and counts in its
own memory until Redis answers again.

Without it, a hung Redis (a stopped process, a network that drops packets) costs every request
the full socket timeout, and the commands that timed out on our side still run when Redis
resumes. With it, the call that met the outage waits the timeout once; every later call is
refused at once (`RedisSkipped`, no network) while a background PING every `RETRY_SECONDS`
finds out when Redis is back, so no reader's request pays for the trials.

The breaker sits in redis-py's own seam: every connect and every command of a connection runs
through the connection's `Retry` object, and the pool hands its `Retry` to every connection it
makes. `_BreakerRetry` asks the breaker first and reports timeouts and connection errors to it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# A slow or absent Redis must cost a request a second at most, not the gunicorn timeout.
TIMEOUT_SECONDS = 1
# While Redis is out, one PING this often: a few seconds of counting in memory after it is back
# cost little (the counts are per worker meanwhile), and a ping a second per worker at most would
# add nothing but noise to a Redis that is struggling.
RETRY_SECONDS = 2.0

_OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError)


class RedisSkipped(redis.ConnectionError):
    """Refused without asking Redis: it failed moments ago (a ConnectionError, so callers that
    already fall back on one need nothing new)."""


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="redis-breaker-probe", daemon=True).start()


class RedisBreaker:
    """Closed: calls go to Redis. Open (after a failure): calls are refused, and a probe in the
    background pings Redis every `retry_seconds` until it answers, which closes the breaker.

    One warning when an outage starts and one line when it ends, however many requests meet it.
    `clock`, `sleep` and `spawn` are injectable so the logic is tested without waits or threads.
    """

    def __init__(
        self,
        probe: Callable[[], object],
        *,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        spawn: Callable[[Callable[[], None]], None] = _in_thread,
    ) -> None:
        self._probe = probe
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._sleep = sleep
        self._spawn = spawn
        self._lock = threading.Lock()
        self._open_since: float | None = None  # None: closed

    @property
    def is_open(self) -> bool:
        """True while Redis is being left alone."""
        return self._open_since is not None

    def allow(self) -> bool:
        """May a call go to Redis now?"""
        return self._open_since is None

    def failed(self, error: BaseException) -> None:
        """A call met a timeout or a connection error: open, and start probing (calls already in
        flight when it opened report their own failure too; only the first counts)."""
        with self._lock:
            if self._open_since is not None:
                return
            self._open_since = self._clock()
        log.warning(
            "Redis did not answer (%s): rate limits and the stream cap count in this worker's "
            "memory until it does (asked again every %.0f s)",
            type(error).__name__,
            self._retry_seconds,
        )
        self._spawn(functools.partial(_probe_until_it_answers, weakref.ref(self)))

    def _answered(self) -> None:
        with self._lock:
            outage = self._clock() - (self._open_since or 0.0)
            self._open_since = None
        log.info("Redis answers again after %.0f s: counts are shared again", outage)


def _probe_until_it_answers(ref: weakref.ref[RedisBreaker]) -> None:
    # Holds the breaker only weakly between pings: the probe of an app that is gone (tests, a
    # flask shell) stops instead of pinging for ever.
    while (breaker := ref()) is not None:
        sleep, pause = breaker._sleep, breaker._retry_seconds
        del breaker
        sleep(pause)
        if (breaker := ref()) is None:
            return
        try:
            breaker._probe()
        except Exception:  # noqa: BLE001 - still out: ask again later, quietly (logged once)
            continue
        breaker._answered()
        return


class _BreakerRetry(Retry):
    """A connection's Retry that asks the breaker before each connect or command and tells it
    about timeouts and connection errors. It never retries: a retry would wait the timeout again."""

    def __init__(self, breaker: RedisBreaker) -> None:
        super().__init__(NoBackoff(), 0)
        self.breaker = breaker

    def __deepcopy__(self, memo: dict[int, Any]) -> _BreakerRetry:
        # Each connection deep-copies its pool's Retry; the breaker must stay one per pool.
        return self

    def call_with_retry(
        self, do: Callable[[], Any], fail: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        if not self.breaker.allow():
            raise RedisSkipped("Redis skipped: it did not answer moments ago")
        try:
            return super().call_with_retry(do, fail, *args, **kwargs)
        except _OUTAGE_ERRORS as error:
            self.breaker.failed(error)
            raise


def shared_redis(url: str) -> redis.Redis:
    """A client whose pool (`.connection_pool`, for Flask-Limiter's storage too) is guarded by one
    breaker, available as `breaker_of(client)`."""
    timeouts = {"socket_connect_timeout": TIMEOUT_SECONDS, "socket_timeout": TIMEOUT_SECONDS}
    # The probe has a client of its own: the guarded pool would refuse it while the breaker is open.
    breaker = RedisBreaker(probe=redis.Redis.from_url(url, **timeouts).ping)
    pool = redis.ConnectionPool.from_url(url, retry=_BreakerRetry(breaker), **timeouts)
    return redis.Redis(connection_pool=pool)


def breaker_of(client: redis.Redis) -> RedisBreaker:
    """The breaker that guards a client made by `shared_redis`."""
    return client.connection_pool.connection_kwargs["retry"].breaker
