"""Rate limits per client and route, the cap on answers in progress, proxies, and Redis sharing."""

from __future__ import annotations

import socket
import uuid
from dataclasses import replace

import pytest

from app.config import ConfigError, Settings, load_settings


def ready_app(make_settings, tuning=None, **overrides):
    """An app on the fixture book (built with `tuning`, else the defaults), migrated, start-up done."""
    from app import create_app
    from app.database import upgrade_database

    app = create_app(make_settings(**overrides), tuning)
    upgrade_database(app)
    app.extensions["services"].startup.run()
    return app


def ask(client, *, ip="10.0.0.1", headers=None, buffered=True, **body):
    return client.post(
        "/api/chat",
        json={"message": "How do I water basil?", **body},
        headers=headers or {},
        environ_base={"REMOTE_ADDR": ip},
        buffered=buffered,
    )


def assert_rate_limited(response):
    assert response.status_code == 429
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"status", "error", "message"}
    assert body["status"] == 429 and body["error"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600


def test_the_request_past_the_chat_limit_gets_429_json_with_retry_after(make_settings):
    client = ready_app(make_settings, rate_limit_chat="3/minute").test_client()
    for _ in range(3):
        assert ask(client).status_code == 200
    limited = ask(client)
    assert_rate_limited(limited)
    assert "3 per 1 minute" in limited.get_json()["message"]
    assert 50 <= int(limited.headers["Retry-After"]) <= 61


def test_limits_count_per_client_ip(make_settings):
    client = ready_app(make_settings, rate_limit_chat="1/minute").test_client()
    assert ask(client, ip="10.0.0.1").status_code == 200
    assert ask(client, ip="10.0.0.1").status_code == 429
    assert ask(client, ip="10.0.0.2").status_code == 200


def test_chat_is_strict_while_health_is_generous_and_the_rest_has_the_default(make_settings, tuning):
    limits = replace(tuning, rate_limit_health="50/minute", rate_limit_default="2/minute")
    app = ready_app(make_settings, limits, rate_limit_chat="1/minute")
    client = app.test_client()
    assert ask(client).status_code == 200
    assert ask(client).status_code == 429
    env = {"REMOTE_ADDR": "10.0.0.1"}
    assert all(client.get("/api/health", environ_base=env).status_code == 200 for _ in range(20))
    conversation = f"/api/conversation/{uuid.uuid4()}"
    assert [client.get(conversation, environ_base=env).status_code for _ in range(3)] == [404, 404, 429]
    assert_rate_limited(client.get(conversation, environ_base=env))


def test_429_body_and_retry_after_reach_a_cross_origin_widget(make_settings):
    client = ready_app(make_settings, rate_limit_chat="1/minute").test_client()
    origin = {"Origin": "http://localhost:3000"}
    ask(client, headers=origin)
    limited = ask(client, headers=origin)
    assert_rate_limited(limited)
    assert limited.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "Retry-After" in limited.headers["Access-Control-Expose-Headers"]


def test_preflights_are_not_counted(make_settings):
    client = ready_app(make_settings, rate_limit_chat="1/minute").test_client()
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    for _ in range(5):
        assert (
            client.options(
                "/api/chat", headers=preflight, environ_base={"REMOTE_ADDR": "10.0.0.1"}
            ).status_code
            == 200
        )
    assert ask(client).status_code == 200


def test_an_empty_limit_means_no_limit(make_settings, tuning):
    strict = replace(tuning, rate_limit_default="1/minute")
    client = ready_app(make_settings, strict, rate_limit_chat="").test_client()
    assert all(ask(client).status_code == 200 for _ in range(4))


def test_forwarded_for_is_ignored_without_proxy_hops(make_settings, caplog):
    client = ready_app(make_settings, rate_limit_chat="1/minute").test_client()
    assert ask(client, headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 200
    # A client cannot escape its limit by inventing a new X-Forwarded-For.
    assert ask(client, headers={"X-Forwarded-For": "2.2.2.2"}).status_code == 429
    assert "PROXY_HOPS is 0" in caplog.text


def test_forwarded_for_names_the_client_behind_the_configured_proxy(make_settings):
    client = ready_app(make_settings, rate_limit_chat="1/minute", proxy_hops=1).test_client()
    proxy = "10.9.9.9"  # every request arrives from the proxy
    assert ask(client, ip=proxy, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200
    assert ask(client, ip=proxy, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 429
    assert ask(client, ip=proxy, headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200
    # Only the last hop (added by the trusted proxy) counts: a spoofed first entry changes nothing.
    spoofed = ask(client, ip=proxy, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
    assert spoofed.status_code == 429


# --- answers in progress -----------------------------------------------------------------------------


def test_a_client_may_have_only_so_many_answers_in_progress(make_settings, tuning):
    app = ready_app(make_settings, replace(tuning, max_streams_per_client=2, token_delay_seconds=0.005))
    client = app.test_client()
    slots = app.extensions["stream_slots"]
    first = ask(client, buffered=False)  # streams not read yet: both answers are in progress
    second = ask(client, buffered=False, message="And tomatoes?")
    assert first.status_code == second.status_code == 200
    assert slots.in_use("10.0.0.1") == 2

    third = ask(client)
    assert third.status_code == 429 and third.is_json
    body = third.get_json()
    assert body["error"] == "too_many_streams" and int(third.headers["Retry-After"]) > 0
    assert ask(client, ip="10.0.0.2").status_code == 200, "other clients are not affected"

    first.close()  # the reader hangs up: the slot comes back
    assert slots.in_use("10.0.0.1") == 1
    assert ask(client).status_code == 200
    second.get_data()  # read to the end: the slot comes back too
    second.close()
    assert slots.in_use("10.0.0.1") == 0


def test_json_answers_count_while_they_are_produced_and_errors_free_the_slot(make_settings, tuning):
    app = ready_app(make_settings, replace(tuning, max_streams_per_client=1))
    client = app.test_client()
    slots = app.extensions["stream_slots"]
    assert ask(client, headers={"Accept": "application/json"}).status_code == 200
    assert ask(client, conversation_id=str(uuid.uuid4())).status_code == 404
    assert ask(client, mode="selection").status_code == 422
    assert slots.in_use("10.0.0.1") == 0


def test_stream_slots_expire_when_never_released():
    from app.api.security import StreamSlots

    slots = StreamSlots(1, lease=0.05, renew_every=0.01)
    assert slots.acquire("c") is not None
    assert slots.acquire("c") is None
    import time

    time.sleep(0.06)
    assert slots.acquire("c") is not None


# --- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("rate_limit_chat", "ten per minute", "RATE_LIMIT_CHAT"),
        ("redis_url", "http://user:s3cretRedisPw@host:6379/0", "REDIS_URL"),
        ("redis_url", "redis://:s3cretRedisPw@host:notaport/0", "REDIS_URL"),
        ("proxy_hops", "-1", "PROXY_HOPS"),
        ("frame_ancestors", "huggingface.co", "FRAME_ANCESTORS"),
    ],
)
def test_malformed_abuse_settings_stop_start_up_naming_the_variable(variable, value, fragment):
    with pytest.raises(ConfigError) as error:
        load_settings(_env_file=None, **{variable: value})
    assert str(error.value).startswith(fragment)
    assert "s3cretRedisPw" not in str(error.value)


def test_proxy_hops_is_one_on_a_hugging_face_space_and_zero_elsewhere(monkeypatch):
    monkeypatch.delenv("PROXY_HOPS", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings(_env_file=None).proxy_hops == 0
    monkeypatch.setenv("SPACE_ID", "someone/book-chat")  # set by Hugging Face in every Space
    assert Settings(_env_file=None).proxy_hops == 1
    monkeypatch.setenv("PROXY_HOPS", "2")
    assert Settings(_env_file=None).proxy_hops == 2


def test_redis_url_is_shown_without_its_password():
    settings = Settings(_env_file=None, redis_url="rediss://default:s3cretRedisPw@cache.example.com:6380/2")
    assert settings.redis_label == "rediss://default:***@cache.example.com:6380/2"
    assert settings.redis_password == "s3cretRedisPw"
    assert "s3cretRedisPw" not in repr(settings) and "s3cretRedisPw" not in str(settings.model_dump())


# --- Redis: shared by every worker ---------------------------------------------------------------------


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url()


def test_limits_are_shared_by_two_apps_through_redis(make_settings, redis_url):
    # Two app instances stand for two gunicorn workers: each has its own limiter and storage.
    one = ready_app(make_settings, rate_limit_chat="3/minute", redis_url=redis_url).test_client()
    two = ready_app(make_settings, rate_limit_chat="3/minute", redis_url=redis_url).test_client()
    assert [ask(c).status_code for c in (one, two, one)] == [200, 200, 200]
    assert_rate_limited(ask(two))
    assert_rate_limited(ask(one))
    assert ask(two, ip="10.0.0.2").status_code == 200


def test_answers_in_progress_are_counted_across_apps_through_redis(make_settings, redis_url, tuning):
    one_at_a_time = replace(tuning, max_streams_per_client=1, token_delay_seconds=0.005)
    first_app = ready_app(make_settings, one_at_a_time, redis_url=redis_url)
    second_app = ready_app(make_settings, one_at_a_time, redis_url=redis_url)
    stream = ask(first_app.test_client(), buffered=False)
    assert stream.status_code == 200
    other = ask(second_app.test_client())
    assert other.status_code == 429 and other.get_json()["error"] == "too_many_streams"
    stream.close()
    assert ask(second_app.test_client()).status_code == 200


def test_redis_down_falls_back_to_memory_and_keeps_answering(make_settings):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"redis://:s3cretRedisPw@127.0.0.1:{s.getsockname()[1]}/0"
    client = ready_app(make_settings, rate_limit_chat="2/minute", redis_url=dead).test_client()
    assert [ask(client).status_code for _ in range(3)] == [200, 200, 429]
