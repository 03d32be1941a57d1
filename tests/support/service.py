"""The real service as tests and benchmarks run it: gunicorn with gunicorn.conf.py on a free port,
logging to a file, and a client that reads the chat stream exactly as the widget does (split the
byte stream on \\n, keep `data: ` lines)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from app.tuning import Tuning
from tests.support.processes import stop_gracefully
from tests.tuning import tuning_env

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
# The same service built with another Tuning (tests/tuned_wsgi.py), for `Service(tuning=...)`.
TUNED_APP = "tests.tuned_wsgi:app"

# Tuning fields tests change in a live service: `Service(tuning=Tuning(**NO_LIMITS, ...))`.
NO_HEALTH_CACHE: dict[str, Any] = {"health_cache_seconds": 0}  # health sees a change at once
NO_LIMITS: dict[str, Any] = {  # generated traffic from one address (rate limits have their own tests)
    "rate_limit_default": "100000/minute",
    "rate_limit_health": "100000/minute",
    "max_streams_per_client": 1000,
}


def typing_pace(milliseconds: float) -> dict[str, float]:
    """Tuning fields for an offline answer streamed a word every `milliseconds` (long enough to interrupt)."""
    return {"token_delay_seconds": milliseconds / 1000}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# /metrics is served only with a token (METRICS_TOKEN): the services tests and benchmarks start
# have this one, and their scrapes send it.
METRICS_TOKEN = "test-metrics-token"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def base_env(instance: Path, **extra: str) -> dict[str, str]:
    """A clean environment for the service: none of the developer's keys, this project's docs/ as
    the book, `instance` as its folder, then `extra`."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "MALLOC_ARENA_MAX")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        PYTHONUNBUFFERED="1",
        INSTANCE_PATH=str(instance),
        DOCS_PATH=str(ROOT / "docs"),
        LOG_LEVEL="INFO",
        FLASK_APP="wsgi",
        METRICS_TOKEN=METRICS_TOKEN,
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a test's service: base_env under `tmp_path`, 2 workers × 8 threads, and
    the test PostgreSQL database when TEST_DATABASE_URL is set. gunicorn's own settings come as an
    operator gives them (GUNICORN_CMD_ARGS); a test's own arguments come last and win."""
    defaults = {"WEB_CONCURRENCY": "2"}
    if os.environ.get("TEST_DATABASE_URL"):
        defaults["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
    gunicorn_args = f"--threads 8 {extra.pop('GUNICORN_CMD_ARGS', '')}".strip()
    return base_env(tmp_path / "instance", **{**defaults, **extra, "GUNICORN_CMD_ARGS": gunicorn_args})


class Gunicorn:
    """The project's gunicorn on 127.0.0.1 with `env` (over base_env), logging to `log_path`."""

    def __init__(
        self,
        instance: Path,
        app: str = "wsgi:app",
        extra_args: Sequence[str] = (),
        *,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        **settings: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        instance.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path or instance / "gunicorn.log"
        self.env = {
            **(env or base_env(instance)),
            **{k: str(v) for k, v in settings.items()},
            "PORT": str(self.port),
        }
        self.started_at = time.perf_counter()
        self.healthy_after: float | None = None
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*GUNICORN[:-1], app, "--bind", f"127.0.0.1:{self.port}", *extra_args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 90, in_a_row: int = 1, poll: float = 0.05) -> dict:
        """Wait until /api/health is 200 `in_a_row` times (each probe may reach either worker);
        returns the last health body. `healthy_after`: seconds from start to the first 200."""
        deadline = time.monotonic() + timeout
        session = requests.Session()
        last: dict = {}
        healthy = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited {self.proc.returncode}:\n{self.log()}")
            try:
                response = session.get(f"{self.url}/api/health", timeout=5)
            except requests.RequestException:
                response = None
            if response is not None:
                last = response.json()
                if response.status_code == 200:
                    self.healthy_after = self.healthy_after or time.perf_counter() - self.started_at
                    healthy += 1
                    if healthy >= in_a_row:
                        return last
                else:
                    healthy = 0
                if last.get("status") == "unhealthy":
                    raise AssertionError(f"start-up failed: {last}\n{self.log()}")
            time.sleep(poll)
        raise AssertionError(f"not healthy in {timeout}s: {last}\n{self.log()}")

    def log(self) -> str:
        """Everything gunicorn and the app wrote so far (stdout and stderr)."""
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        """SIGTERM (live streams drain), then SIGKILL after 40 s."""
        stop_gracefully(self.proc)
        self._log.close()

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Service(Gunicorn):
    """A test's service: gunicorn under `tmp_path` with service_env plus `settings`, its workers'
    apps built with `tuning` (tests/tuning.py)."""

    def __init__(self, tmp_path: Path, tuning: Tuning | None = None, **settings: str) -> None:
        env = service_env(tmp_path, **settings, **tuning_env(tuning))
        super().__init__(
            tmp_path / "instance",
            app=TUNED_APP if tuning is not None else "wsgi:app",
            log_path=tmp_path / "gunicorn.log",
            env=env,
        )

    def wait_healthy(self, timeout: float = 90, in_a_row: int = 6, poll: float = 0.2) -> dict:
        """As Gunicorn.wait_healthy, but 6 healthy answers in a row by default: both workers ready."""
        return super().wait_healthy(timeout, in_a_row, poll)


def parse_widget_stream(body: str) -> list[dict]:
    """Parse an SSE body exactly as the widget does: split on \\n, keep `data: ` lines."""
    return [json.loads(line[len("data: ") :]) for line in body.split("\n") if line.startswith("data: ")]


def widget_chat(url: str, body: dict) -> list[dict]:
    """POST like the widget and parse the stream like the widget, chunk by chunk."""
    response = requests.post(
        f"{url}/api/chat", json=body, stream=True, timeout=60, headers={"Origin": "http://localhost:3000"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    buffer = ""
    events = []
    for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
        buffer += chunk
        lines = buffer.split("\n")
        buffer = lines.pop()
        events.extend(json.loads(line[6:]) for line in lines if line.startswith("data: "))
    return events


def text_of(events: list[dict]) -> str:
    """The answer text: the `content` of the token events, joined."""
    return "".join(e["content"] for e in events if e["type"] == "token")


def chat_then_leave(port: int, message: str, events: int = 4) -> str:
    """Start a chat on a raw socket, read `events` events, then hang up; returns the conversation id."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        body = json.dumps({"message": message}).encode()
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while received.count(b"data: ") < events:  # metadata and a few tokens
            received += sock.recv(4096)
    return json.loads(received.split(b"data: ")[1].split(b"\n")[0])["conversation_id"]
