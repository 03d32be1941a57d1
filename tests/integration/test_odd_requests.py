"""Bodies and failures an attacker or an outage produces: each gets the API's JSON error with the
right status, never a 500 or a traceback."""

from __future__ import annotations

import io
import socket
import uuid

import pytest

from tests.conftest import parse_widget_stream

DEPTH = 5000  # far past Python's recursion limit (the issue saw 500s from 990 on)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/api/chat", "/api/feedback"])
@pytest.mark.parametrize("body", [nested(DEPTH), '{"message": ' + nested(DEPTH) + "}", nested(995)])
def test_deeply_nested_json_is_400(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert response.is_json and response.get_json()["status"] == response.status_code
    if body.startswith("[" * DEPTH):
        assert response.status_code == 400 and response.get_json()["error"] == "bad_request"


@pytest.mark.parametrize("path", ["/api/chat", "/api/feedback"])
@pytest.mark.parametrize("body", ["null", "[]", '"text"', "42", "true"])
def test_json_that_is_not_an_object_is_422(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["error"] == "validation_error"


def test_broken_json_and_bad_encoding_are_400(client):
    for data in (b"{not json", b"\xff\xfe\xfa{", b""):
        response = client.post("/api/chat", data=data, content_type="application/json")
        assert response.status_code == 400 and response.get_json()["error"] == "bad_request"


def test_a_chunked_body_over_the_limit_is_413(client, app):
    # A chunked request reaches the app as a stream with no Content-Length (wsgi.input_terminated).
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b'{"message": "' + b"x" * (limit + 10) + b'"}'
    response = client.post(
        "/api/chat",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "payload_too_large"


def test_a_chunked_body_within_the_limit_is_served(client):
    body = b'{"message": "How do I water basil?"}'
    response = client.post(
        "/api/chat",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert parse_widget_stream(response.get_data(as_text=True))[-1]["type"] == "done"


@pytest.fixture
def client_without_database(make_settings):
    """The app with a PostgreSQL URL where nothing listens: every database call fails to connect."""
    from app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(make_settings(database_url=f"postgresql://postgres@127.0.0.1:{port}/gone"))
    return app.test_client()


def test_database_down_is_503_database_unavailable_on_every_route(client_without_database):
    client = client_without_database
    for response in (
        client.get(f"/api/conversation/{uuid.uuid4()}"),
        client.post("/api/feedback", json={"message_id": str(uuid.uuid4()), "vote": "up"}),
    ):
        assert response.status_code == 503, response.get_data(as_text=True)
        body = response.get_json()
        assert body["error"] == "database_unavailable"
        assert response.headers["Retry-After"]
        assert "127.0.0.1" not in body["message"] and "postgres" not in body["message"].lower()
