"""No secret in any log line or response: known secret values in the environment of a real
gunicorn, every error path driven through it, all of its output and every response searched.

The secrets: GEMINI_API_KEY (in real use, against the fake Gemini, which also fails on purpose
with the key in its error text), QDRANT_API_KEY, the database password (in the running service on
PostgreSQL runs; on every run in the start-ups that fail) and the password in REDIS_URL (a Redis
that refuses it, or none: either way the limiter's fallback path runs and logs).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from app.tuning import Tuning
from tests.conftest import ROOT, TEST_DATABASE_URL
from tests.fakes.gemini_server import FakeGeminiProcess
from tests.support.service import GUNICORN, NO_HEALTH_CACHE, Service, free_port, service_env

pytestmark = pytest.mark.e2e

GEMINI_KEY = "gmk-Secr3t-7c41d9e0a2"
QDRANT_KEY = "qdk-Secr3t-5b8e2f6a91"
DB_PASSWORD = "dbpw-Secr3t-3e9a7c15"
REDIS_PASSWORD = "rdpw-Secr3t-91f0b6d2"
SECRETS = {
    "GEMINI_API_KEY": GEMINI_KEY,
    "QDRANT_API_KEY": QDRANT_KEY,
    "database password": DB_PASSWORD,
    "REDIS_URL password": REDIS_PASSWORD,
}

SECRET_ENV = {
    "GEMINI_API_KEY": GEMINI_KEY,
    "QDRANT_API_KEY": QDRANT_KEY,
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/14",
}


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def describe(response: requests.Response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    request = response.request
    return f"{request.method} {request.url} -> {response.status_code}\n{headers}\n\n{response.text}"


def assert_no_secret(where: str, text: str) -> None:
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, f"{', '.join(leaked)} leaked in {where}:\n{text[-5000:]}"


def drive_every_error_path(url: str, fake: FakeGeminiProcess, upstream: list) -> list[requests.Response]:
    """Every kind of request, good and bad; `upstream` collects what reached the fake Gemini."""
    chat, feedback = f"{url}/api/chat", f"{url}/api/feedback"
    seen: list[requests.Response] = []

    def keep(response: requests.Response) -> requests.Response:
        seen.append(response)
        return response

    # What works, so the keys are really in use.
    for path in ("/", "/api/health", "/api/health/live", "/api/openapi.json", "/docs"):
        keep(requests.get(url + path, timeout=10))
    stream = keep(
        requests.post(chat, json={"message": "How do I deploy to Hugging Face Spaces?"}, timeout=60)
    )
    assert stream.status_code == 200, stream.text
    answer = keep(
        requests.post(
            chat,
            json={"message": "Which variables configure CORS?"},
            headers={"Accept": "application/json"},
            timeout=60,
        )
    ).json()
    keep(
        requests.post(
            feedback, json={"message_id": answer["message_id"], "vote": "down", "comment": "meh"}, timeout=10
        )
    )
    conversation = keep(
        requests.get(f"{url}/api/conversation/{answer['conversation_id']}", timeout=10)
    ).json()
    keep(
        requests.post(
            feedback, json={"message_id": conversation["messages"][0]["id"], "vote": "up"}, timeout=10
        )
    )

    # Bad input of every kind.
    keep(requests.post(chat, data='{"message": ', headers={"Content-Type": "application/json"}, timeout=10))
    keep(
        requests.post(
            chat, data="message=hi", headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10
        )
    )
    keep(requests.post(chat, json={"message": "hi", "mode": "selection"}, timeout=10))
    keep(requests.post(chat, json={"message": "hi", "context": "y" * 100_000}, timeout=10))
    keep(
        requests.post(
            chat,
            json={"message": "hi", "conversation_id": "8d0b4c1e-1f0a-4d8e-9d5e-2f7a3b9c4d11"},
            timeout=10,
        )
    )
    keep(
        requests.post(
            feedback, json={"message_id": "8d0b4c1e-1f0a-4d8e-9d5e-2f7a3b9c4d11", "vote": "up"}, timeout=10
        )
    )
    keep(requests.post(feedback, json={"message_id": "x", "vote": "sideways"}, timeout=10))
    keep(requests.get(f"{url}/api/conversation/8d0b4c1e-1f0a-4d8e-9d5e-2f7a3b9c4d11", timeout=10))
    keep(requests.get(f"{url}/api/conversation/not-a-uuid", timeout=10))
    keep(requests.get(f"{url}/api/nope", timeout=10))
    keep(requests.get(chat, timeout=10))
    keep(requests.delete(feedback, timeout=10))

    # Gemini failing, its error text carrying the key (a careless upstream must not leak it).
    for status in (400, 403, 429, 503):
        fake.configure(
            fail_next={"n": 20, "status": status, "message": f"API key {GEMINI_KEY} rejected ({status})"}
        )
        keep(requests.post(chat, json={"message": f"How do I run the tests? ({status})"}, timeout=60))
        upstream.extend(fake.requests)
        fake.reset()

    # The rate limit.
    for _ in range(30):
        if keep(requests.post(chat, json={"message": "And again?"}, timeout=60)).status_code == 429:
            break
    return seen


@pytest.fixture
def fake_gemini():
    with FakeGeminiProcess(api_key=GEMINI_KEY) as fake:
        yield fake


def test_no_secret_in_any_response_or_log_line(tmp_path, fake_gemini):
    env = dict(
        SECRET_ENV, GEMINI_BASE_URL=fake_gemini.base_url, LOG_LEVEL="DEBUG", RATE_LIMIT_CHAT="12/minute"
    )
    if TEST_DATABASE_URL:  # the local server trusts connections: the password is carried, not checked
        env["DATABASE_URL"] = with_password(TEST_DATABASE_URL, DB_PASSWORD)
    tuning = Tuning(**NO_HEALTH_CACHE, gemini_max_retry_wait_seconds=0.2)
    service = Service(tmp_path, tuning=tuning, **env)
    try:
        health = service.wait_healthy()
        assert_no_secret("health", str(health))
        upstream: list = []
        responses = drive_every_error_path(service.url, fake_gemini, upstream)
        statuses = {r.status_code for r in responses}
        assert {200, 201, 400, 404, 405, 413, 415, 422, 429} <= statuses, statuses
        assert statuses & {502, 503, 429}, "a Gemini failure reached the reader"
        for response in responses:
            assert_no_secret("a response", describe(response))
        # The key was really sent upstream, so the absence above means something.
        assert any(r.headers.get("x-goog-api-key") == GEMINI_KEY for r in upstream)
    finally:
        service.stop()
    log = service.log_path.read_text()
    assert "Traceback" not in log, log[-5000:]
    assert_no_secret("the service's output", log)


@pytest.mark.parametrize(
    ("command", "bad"),
    [
        (GUNICORN, {"DATABASE_URL": f"postgresql://chat:{DB_PASSWORD}@/nohost"}),
        (
            [sys.executable, "-m", "flask", "ingest"],
            {"DATABASE_URL": f"postgresql://chat:{DB_PASSWORD}@/nohost"},
        ),
        (GUNICORN, {"REDIS_URL": f"http://:{REDIS_PASSWORD}@cache.example.com/0"}),
        (
            [sys.executable, "-m", "flask", "db", "upgrade"],
            {"REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache:port/0"},
        ),
        (GUNICORN, {"RATE_LIMIT_CHAT": "lots", "GEMINI_BASE_URL": "ftp://nowhere"}),
    ],
    ids=[
        "gunicorn-bad-database-url",
        "flask-bad-database-url",
        "gunicorn-bad-redis-url",
        "flask-bad-redis-url",
        "gunicorn-bad-limits",
    ],
)
def test_malformed_configuration_stops_start_up_without_a_secret(tmp_path, command, bad):
    env = service_env(tmp_path, **{**SECRET_ENV, **bad}, PORT=str(free_port()), FLASK_APP="wsgi")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Configuration error" in output and "Traceback" not in output, output
    assert_no_secret("a failed start-up", output)


def test_database_down_at_start_up_prints_no_secret(tmp_path):
    """`flask db upgrade` fails; gunicorn keeps serving (health degraded) and retries.

    Neither prints a secret."""
    closed = free_port()  # nothing listens there
    port = free_port()
    env = service_env(
        tmp_path,
        **SECRET_ENV,
        PORT=str(port),
        FLASK_APP="wsgi",
        DATABASE_URL=f"postgresql://chat:{DB_PASSWORD}@127.0.0.1:{closed}/chat",
    )
    started = time.monotonic()
    upgrade = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert upgrade.returncode != 0 and time.monotonic() - started < 60, upgrade.stdout + upgrade.stderr
    assert_no_secret("flask db upgrade with the database down", upgrade.stdout + upgrade.stderr)

    server = subprocess.Popen(
        GUNICORN, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=15)
                body = response.text
                if response.json().get("status") == "degraded":
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        assert body and '"degraded"' in body, body
        assert_no_secret("health with the database down", body)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert_no_secret("gunicorn with the database down", output)
    assert (Path(ROOT) / "wsgi.py").is_file()
