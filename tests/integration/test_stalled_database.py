"""PostgreSQL behind a proxy that stalls (SIGSTOP): connections stay open, nothing comes back.

The kernel still ACKs what the service sends and answers its keepalive probes, so only the
service's own client-side deadlines can turn the stall into errors: a 503 for the reader within
about 5 s, `degraded` health within 5 s, and recovery by itself once the proxy moves again.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.database import (
    DEAD_PATH_SECONDS,
    engine_options,
    install_client_deadlines,
    install_postgres_session_settings,
)
from tests.conftest import TEST_DATABASE_URL
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="a stalled PostgreSQL needs one: set TEST_DATABASE_URL"
)


@pytest.fixture
def proxy():
    """A TCP proxy in its own process in front of the test database."""
    upstream = make_url(TEST_DATABASE_URL)
    with TcpProxy(f"{upstream.host or '127.0.0.1'}:{upstream.port or 5432}") as running:
        yield running


@pytest.fixture
def proxied_url(proxy):
    """The test database's URL through the proxy."""
    return (
        make_url(TEST_DATABASE_URL)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )


def timed(call):
    """(what `call` returned or raised, seconds it took)."""
    started = time.monotonic()
    try:
        outcome = call()
    except Exception as exc:  # noqa: BLE001 - the test asserts on it
        outcome = exc
    return outcome, time.monotonic() - started


def test_a_stalled_path_fails_pings_in_2_s_then_refuses_at_once_then_connects_in_5_s(
    proxy, proxied_url, make_settings
):
    settings = make_settings(database_url=proxied_url)
    engine = create_engine(settings.sqlalchemy_url, **engine_options(settings))
    install_postgres_session_settings(engine)
    install_client_deadlines(engine)

    def select_one():
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar()

    try:
        assert select_one() == 1  # one pooled connection
        proxy.pause()
        pinged, ping_seconds = timed(select_one)  # the pooled connection's pre-ping meets its deadline
        refused, refused_seconds = timed(select_one)  # right after: no new wait on a dead path
        time.sleep(DEAD_PATH_SECONDS)
        connected, connect_seconds = timed(select_one)  # then one new connection is tried
        proxy.resume()
        assert isinstance(pinged, OperationalError) and "did not answer within 2 s" in str(pinged)
        assert 1.9 < ping_seconds < 3.5
        assert isinstance(refused, OperationalError) and refused_seconds < 0.5
        assert isinstance(connected, OperationalError) and "did not answer within 5 s" in str(connected)
        assert 4.9 < connect_seconds < 6.5
        time.sleep(DEAD_PATH_SECONDS)
        assert wait_until(lambda: timed(select_one)[0] == 1, timeout=10)
    finally:
        proxy.resume()
        engine.dispose()


def test_a_stalled_database_is_degraded_health_and_a_503_for_chats_then_healthy(proxy, proxied_url, make_app):
    app = make_app(database_url=proxied_url)
    client = app.test_client()
    assert client.get("/api/health").status_code == 200
    try:
        proxy.pause()
        probe, probe_seconds = timed(lambda: client.get("/api/health"))
        assert probe.status_code == 503 and probe_seconds < 3
        database = probe.get_json()["services"]["database"]
        assert probe.get_json()["status"] == "degraded" and database["state"] == "down"

        chat, chat_seconds = timed(
            lambda: client.post("/api/chat", json={"message": "How do I water basil?"})
        )
        assert chat.status_code == 503 and chat.get_json()["error"] == "database_unavailable"
        assert chat.headers["Retry-After"] == "5" and chat_seconds < 6.5
        assert client.get("/api/health/live").status_code == 200
    finally:
        proxy.resume()
    wait_until(lambda: client.get("/api/health").status_code == 200, timeout=10, interval=0.2)
    response = client.post("/api/chat", json={"message": "How do I water basil?"})
    assert response.status_code == 200 and '"type": "done"' in response.get_data(as_text=True)
