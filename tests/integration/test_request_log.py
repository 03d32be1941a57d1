"""Request ids, the JSON request line, the chat line with its timings, and redaction in JSON logs."""

import io
import json
import logging
import uuid

import pytest

from app.logging_setup import JsonFormatter, TextFormatter
from tests.conftest import parse_widget_stream


def lines(caplog, logger):
    """The records of `logger`, formatted as the service writes them (LOG_FORMAT=json)."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == logger]


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def test_request_id_is_honoured_echoed_or_made(client, logs):
    logs.set_level(logging.DEBUG, logger="app.request")  # healthy probes are DEBUG lines
    given = client.get("/api/health/live", headers={"X-Request-ID": "edge-7f3a:01"})
    assert given.headers["X-Request-ID"] == "edge-7f3a:01"
    made = client.get("/api/health/live")
    assert len(made.headers["X-Request-ID"]) == 32 and uuid.UUID(made.headers["X-Request-ID"])
    for insane in ("x" * 129, "has space", "new\\nline", "<script>"):
        replaced = client.get("/api/health/live", headers={"X-Request-ID": insane}).headers["X-Request-ID"]
        assert replaced != insane and len(replaced) == 32
    ids = [line["request_id"] for line in lines(logs, "app.request")]
    assert ids[0] == "edge-7f3a:01" and ids[1] == made.headers["X-Request-ID"]


def test_one_json_line_per_request_with_the_route_rule(client, logs):
    events = parse_widget_stream(
        client.post("/api/chat", json={"message": "How do I water basil?"}).get_data(as_text=True)
    )
    cid = events[0]["conversation_id"]
    client.get(f"/api/conversation/{cid}", headers={"X-Request-ID": "conv-1"})
    client.get("/no/such/page")
    client.get("/metrics")  # measured, not logged
    requests = lines(logs, "app.request")
    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/api/chat", 200),
        ("GET", "/api/conversation/<conversation_id>", 200),  # the rule, never the raw path
        ("GET", "<unmatched>", 404),
    ]
    for line in requests:
        assert line["event"] == "request" and line["level"] == "INFO" and line["duration_ms"] >= 0
        assert set(line) >= {"time", "logger", "pid", "message", "request_id"}
    assert cid not in json.dumps(requests)


def test_healthy_probes_are_debug_lines_and_a_failing_probe_an_info_line(client, make_settings, logs):
    # The image's HEALTHCHECK probes every 30 s: at INFO that is a line every 30 s, forever.
    assert client.get("/api/health/live").status_code == 200
    assert client.get("/api/health").status_code == 200
    assert lines(logs, "app.request") == []
    logs.set_level(logging.DEBUG, logger="app.request")
    client.get("/api/health")
    assert [(r["route"], r["level"]) for r in lines(logs, "app.request")] == [("/api/health", "DEBUG")]
    logs.clear()

    from app import create_app

    starting = create_app(make_settings(instance_path=make_settings().instance_path.parent / "other"))
    response = starting.test_client().get("/api/health")  # start-up not run yet: 503 starting
    with starting.app_context():
        from app.extensions import db

        db.engine.dispose()
    assert response.status_code == 503
    assert [(r["route"], r["status"], r["level"]) for r in lines(logs, "app.request")] == [
        ("/api/health", 503, "INFO")
    ]


def test_one_chat_line_per_turn_with_its_timings(client, logs):
    response = client.post(
        "/api/chat", json={"message": "How do I water basil?"}, headers={"X-Request-ID": "chat-42"}
    )
    events = parse_widget_stream(response.get_data(as_text=True))
    (line,) = lines(logs, "app.chat")
    assert line["event"] == "chat" and line["request_id"] == "chat-42"
    assert (
        line["conversation_id"] == events[0]["conversation_id"]
        and line["message_id"] == events[0]["message_id"]
    )
    assert line["status"] == "complete" and line["cached"] is False and line["answerer"] == "offline"
    assert line["retrieval_ms"] >= 0 and line["total_ms"] >= line["first_token_ms"] >= 0
    assert "tokens" in line and line["store_ms"] >= 0  # tokens: None offline; prompt + completion with Gemini

    client.post(
        "/api/chat", json={"message": "How do I water basil?"}, headers={"X-Request-ID": "chat-43"}
    ).get_data()
    second = lines(logs, "app.chat")[-1]
    assert (second["request_id"], second["cached"], second["answerer"]) == ("chat-43", True, "cache")
    assert second["retrieval_ms"] is None


def test_json_lines_keep_secrets_redacted(make_settings):
    from app import create_app

    secret = "AIza-very-secret-key-0004"
    create_app(make_settings(gemini_api_key=secret, index_on_start=False, log_format="json"))
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_chat_handler", False))
    assert isinstance(handler.formatter, JsonFormatter)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        logging.getLogger("some.library").warning(
            "calling with key=%s", secret, extra={"fields": {"url": f"https://x/?key={secret}"}}
        )
    finally:
        handler.setStream(previous)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert secret not in stream.getvalue()
    assert line["message"] == "calling with key=***" and line["url"] == "https://x/?key=***"

    create_app(make_settings(gemini_api_key=secret, index_on_start=False, log_format="TEXT"))
    assert isinstance(handler.formatter, TextFormatter)
