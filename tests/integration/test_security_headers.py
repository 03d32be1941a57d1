"""Security headers on every response, whatever its status; CORS never allows credentials."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from app.api.security import check_cors
from app.config import ConfigError


def ready_app(make_settings, tuning=None, **overrides):
    from app import create_app
    from app.database import upgrade_database

    app = create_app(make_settings(**overrides), tuning)
    upgrade_database(app)
    app.extensions["services"].startup.run()
    return app


@pytest.fixture
def secured(make_settings, tuning):
    app = ready_app(make_settings, replace(tuning, rate_limit_default="3/minute"))

    @app.get("/api/boom")  # an unexpected failure, for the 500 path
    def boom():
        raise RuntimeError("kaboom")

    return app


def every_kind_of_response(client) -> dict[str, object]:
    responses = {
        "json 200": client.get("/api/health"),
        "stream 200": client.post("/api/chat", json={"message": "How do I water basil?"}),
        "html 200": client.get("/docs"),
        "javascript 200": client.get("/docs/static/init.js"),
        "css 200": client.get("/docs/static/swagger-ui.css"),
        "openapi 200": client.get("/api/openapi.json"),
        "400": client.post("/api/chat", data="{", content_type="application/json"),
        "404 route": client.get("/nowhere"),
        "404 conversation": client.get(f"/api/conversation/{uuid.uuid4()}"),
        "405": client.put("/api/chat"),
        "413": client.post("/api/chat", json={"message": "x", "context": "y" * 100_000}),
        "415": client.post("/api/chat", data="hi", content_type="text/plain"),
        "422": client.post("/api/chat", json={}),
        "500": client.get("/api/boom"),
    }
    for _ in range(4):
        responses["429"] = client.get(f"/api/conversation/{uuid.uuid4()}")
    return responses


def test_every_response_carries_the_security_headers(secured):
    responses = every_kind_of_response(secured.test_client())
    assert responses["429"].status_code == 429 and responses["500"].status_code == 500
    for name, response in responses.items():
        headers = response.headers
        assert headers.get("X-Content-Type-Options") == "nosniff", name
        assert headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", name
        csp = headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "script-src 'self';" in csp, name
        assert "frame-ancestors 'self' https://huggingface.co" in csp, name
        # X-Frame-Options cannot allow huggingface.co; it would stop the Space page from framing us.
        assert "X-Frame-Options" not in headers, name


def test_the_500_is_the_json_shape_without_the_exception(secured):
    response = secured.test_client().get("/api/boom")
    assert response.status_code == 500 and response.is_json
    assert response.get_json()["error"] == "internal_error"
    assert "kaboom" not in response.get_data(as_text=True)


def test_the_policy_allows_nothing_from_other_origins(client):
    csp = client.get("/docs").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    for name, value in directives.items():
        if name == "frame-ancestors":
            continue
        sources = set(value.split())
        assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:"}, (name, value)
    assert directives["script-src"] == "'self'", "no inline or remote scripts"
    assert directives["object-src"] == "'none'"


def test_frame_ancestors_is_a_setting(make_settings):
    client = ready_app(
        make_settings, frame_ancestors="https://huggingface.co, https://book.example.com"
    ).test_client()
    csp = client.get("/api/health").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://huggingface.co https://book.example.com" in csp
    only_self = ready_app(make_settings, frame_ancestors="").test_client()
    assert "frame-ancestors 'self'" in only_self.get("/").headers["Content-Security-Policy"]


# --- CORS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("origins", ["http://localhost:3000", "*"])
def test_credentials_are_never_allowed_cross_origin(make_settings, origins):
    client = ready_app(make_settings, allowed_origins=origins).test_client()
    origin = {"Origin": "http://localhost:3000"}
    preflight = client.options(
        "/api/chat",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    post = client.post("/api/chat", json={"message": "hi"}, headers={**origin, "Cookie": "session=abc"})
    feedback = client.post("/api/feedback", json={}, headers=origin)
    for response in (preflight, post, feedback):
        assert response.headers.get("Access-Control-Allow-Origin") in ("http://localhost:3000", "*")
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_wildcard_origin_with_credentials_is_refused_at_start_up():
    with pytest.raises(ConfigError) as error:
        check_cors(["https://book.example.com", "*"], supports_credentials=True)
    assert str(error.value).startswith("ALLOWED_ORIGINS")
    check_cors(["*"], supports_credentials=False)
    check_cors(["https://book.example.com"], supports_credentials=True)


def vary_values(response) -> list[str]:
    return [value.strip() for line in response.headers.getlist("Vary") for value in line.split(",")]


@pytest.mark.parametrize(
    "origins", ["http://localhost:3000", "http://localhost:3000,https://book.example.com", "*"]
)
def test_api_answers_vary_on_origin(make_settings, origins):
    """A shared cache must not hand one origin's answer (with or without Allow-Origin) to another."""
    client = ready_app(make_settings, allowed_origins=origins).test_client()
    allowed = client.get("/api/health", headers={"Origin": "http://localhost:3000"})
    other = client.get("/api/health", headers={"Origin": "https://elsewhere.example"})
    no_origin = client.get("/api/health")
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    echoed = "https://elsewhere.example" if origins == "*" else None  # "*" echoes any origin
    assert other.headers.get("Access-Control-Allow-Origin") == echoed
    for response in (allowed, other, no_origin):
        assert vary_values(response).count("Origin") == 1, response.headers.getlist("Vary")
