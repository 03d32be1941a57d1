"""A hung Redis (its process stopped with SIGSTOP, as in issue 22): readers are answered at memory
speed after the first timeout, and no slot outlives its request once Redis resumes.

Each test has a redis-server of its own (the `redis_server` fixture); the app is the real one,
with REDIS_URL pointing at it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import redis

from app.api.redis_breaker import TIMEOUT_SECONDS, breaker_of
from tests.integration.test_rate_limits import ask, ready_app
from tests.support.waiting import wait_until

READER = "10.0.0.1"
JSON = {"Accept": "application/json"}
STREAMS_KEY = f"book-chat:streams:{READER}"
# Long enough for the breaker to probe (in the background) twice while Redis is hung.
STALL_SECONDS = 5.0


def chats_during_a_stall(client, server) -> list[tuple[int, float]]:
    """Hang Redis, ask one question after another for STALL_SECONDS, resume it: (status, seconds)
    of each answer."""
    answered = []
    server.pause()
    try:
        end = time.monotonic() + STALL_SECONDS
        while time.monotonic() < end:
            started = time.monotonic()
            status = ask(client, ip=READER, headers=JSON).status_code
            answered.append((status, time.monotonic() - started))
    finally:
        server.resume()
    return answered


def test_a_hung_redis_costs_one_request_one_timeout_then_answers_come_from_memory(
    make_settings, redis_server
):
    app = ready_app(make_settings, rate_limit_chat="100000/minute", redis_url=redis_server.url())
    client = app.test_client()
    assert ask(client, ip=READER, headers=JSON).status_code == 200  # pooled connections, shared counts
    assert redis.Redis.from_url(redis_server.url()).keys("LIMITS:*"), "the limits are counted in Redis"

    answered = chats_during_a_stall(client, redis_server)

    slow = [seconds for _, seconds in answered if seconds > 0.9 * TIMEOUT_SECONDS]
    assert len(slow) <= 1, f"{len(slow)} of {len(answered)} requests waited for Redis: {slow}"
    assert max(seconds for _, seconds in answered) < 2 * TIMEOUT_SECONDS, (
        "the limiter and the cap wait once, together"
    )
    assert {status for status, _ in answered} == {200}, "an outage never fails a reader"
    assert len(answered) >= 20, f"only {len(answered)} answers in {STALL_SECONDS} s"
    breaker = breaker_of(app.extensions["stream_slots"]._redis)
    wait_until(
        lambda: not breaker.is_open, timeout=10, message="the breaker did not close after Redis resumed"
    )


def test_after_a_stall_no_slot_outlives_its_request(make_settings, redis_server, tuning):
    # A reader with two tabs and a cap of 2: one phantom slot would be enough to refuse a tab.
    two_tabs = replace(tuning, max_streams_per_client=2, token_delay_seconds=0.005)
    # No rate limit on chat: the stream cap's acquire is then the call that meets the outage,
    # sent on a pooled connection, so hung Redis runs it when it resumes (the phantom of issue 22).
    app = ready_app(make_settings, two_tabs, rate_limit_chat="", redis_url=redis_server.url())
    client = app.test_client()
    assert ask(client, ip=READER, headers=JSON).status_code == 200
    store = redis.Redis.from_url(redis_server.url())

    answered = chats_during_a_stall(client, redis_server)
    assert {status for status, _ in answered} == {200}
    breaker = breaker_of(app.extensions["stream_slots"]._redis)
    wait_until(
        lambda: not breaker.is_open, timeout=10, message="the breaker did not close after Redis resumed"
    )

    tabs = [
        ask(client, ip=READER, buffered=False),
        ask(client, ip=READER, buffered=False, message="And tomatoes?"),
    ]
    assert [tab.status_code for tab in tabs] == [200, 200], "a phantom slot refused a tab"
    assert store.zcard(STREAMS_KEY) == 2, "Redis holds the two live answers, nothing else"
    for tab in tabs:
        tab.close()
    assert store.zcard(STREAMS_KEY) == 0, "no token whose request is over"


def test_a_live_stream_renews_its_lease(make_settings, redis_server, tuning):
    # A lease shorter than the answer: only renewals keep the slot.
    short_lease = replace(
        tuning, token_delay_seconds=0.05, stream_renew_seconds=0.1, stream_lease_seconds=0.4
    )
    app = ready_app(make_settings, short_lease, redis_url=redis_server.url())
    slots = app.extensions["stream_slots"]
    stream = ask(app.test_client(), ip=READER, buffered=False)
    chunks = iter(stream.response)
    started = time.monotonic()
    while time.monotonic() - started < 3 * slots.lease:
        next(chunks)
    assert slots.in_use(READER) == 1, "the slot lapsed while its stream was live"
    stream.close()
    assert slots.in_use(READER) == 0
