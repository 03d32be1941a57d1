"""The Redis circuit breaker's states, on a clock the test moves (no sleeps, no threads)."""

from __future__ import annotations

import logging

import pytest
import redis

from app.api.redis_breaker import RedisBreaker, RedisSkipped, _BreakerRetry


class Clock:
    """A monotonic clock that moves only when the breaker sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Probe:
    """A PING that times out `failures` times, then answers; counts its calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise redis.TimeoutError("Timeout reading from socket")


def make_breaker(failures: int = 0):
    clock, probe, spawned = Clock(), Probe(failures), []
    breaker = RedisBreaker(probe, retry_seconds=2, clock=clock, sleep=clock.sleep, spawn=spawned.append)
    return breaker, clock, probe, spawned


def test_closed_until_a_failure_then_refuses_without_asking_until_the_probe_answers():
    breaker, clock, probe, spawned = make_breaker(failures=3)
    assert breaker.allow() and not breaker.is_open
    breaker.failed(redis.TimeoutError())
    assert breaker.is_open and not any(breaker.allow() for _ in range(100))
    assert len(spawned) == 1 and probe.calls == 0, "the probe runs apart, not in a request"
    spawned.pop()()  # in production a thread: pings every 2 s until Redis answers
    assert probe.calls == 4 and clock.sleeps == [2, 2, 2, 2]
    assert not breaker.is_open and breaker.allow()


def test_failures_while_open_start_no_second_probe():
    breaker, clock, probe, spawned = make_breaker()
    for _ in range(50):  # every request in flight when Redis hung times out
        breaker.failed(redis.TimeoutError())
    assert len(spawned) == 1


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    breaker, clock, probe, spawned = make_breaker(failures=3)
    with caplog.at_level(logging.INFO, logger="app.api.redis_breaker"):
        for _ in range(50):
            breaker.failed(redis.TimeoutError())
        spawned.pop()()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert (
        "Redis did not answer (TimeoutError)" in messages[0] and caplog.records[0].levelno == logging.WARNING
    )
    assert "Redis answers again after 8 s" in messages[1]


def test_the_probe_of_a_breaker_that_is_gone_stops():
    breaker, clock, probe, spawned = make_breaker(failures=10**9)
    breaker.failed(redis.TimeoutError())
    del breaker  # the app was dropped: nothing holds its breaker but the probe, weakly
    spawned.pop()()
    assert probe.calls == 0


def test_the_connection_retry_asks_the_breaker_and_reports_outages():
    breaker, *_ = make_breaker()
    retry = _BreakerRetry(breaker)
    closed = []

    def hung():
        raise redis.TimeoutError("Timeout reading from socket")

    with pytest.raises(redis.TimeoutError):
        retry.call_with_retry(hung, closed.append)
    assert len(closed) == 1, "the connection is closed once, never retried"
    assert breaker.is_open
    with pytest.raises(RedisSkipped):
        retry.call_with_retry(lambda: pytest.fail("sent while the breaker is open"), closed.append)
    assert isinstance(RedisSkipped(), redis.ConnectionError), "callers' fallbacks catch it already"


def test_command_errors_are_not_outages():
    breaker, *_ = make_breaker()
    retry = _BreakerRetry(breaker)

    def refused():
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):
        retry.call_with_retry(refused, lambda error: None)
    assert not breaker.is_open


def test_every_connection_shares_its_pools_breaker():
    breaker, *_ = make_breaker()
    pool = redis.ConnectionPool(retry=_BreakerRetry(breaker))
    assert pool.make_connection().retry.breaker is breaker
