"""Faults, each driven for real: PostgreSQL stopped under a running service, a reader who
leaves mid-answer, and gunicorn stopping or recycling workers while answers stream.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from app.tuning import Tuning
from tests.fakes.gemini_server import FakeGeminiProcess
from tests.support.service import (
    METRICS_AUTH,
    NO_HEALTH_CACHE,
    Service,
    chat_then_leave,
    free_port,
    typing_pace,
    widget_chat,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)


class ThrowawayPostgres:
    """A private PostgreSQL cluster (initdb + pg_ctl) that a test may stop and start at will."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.data = root / "pgdata"
        self.sockets = root / "pgsock"
        self.log = root / "pg.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        for folder in (self.data, self.sockets):
            folder.mkdir(parents=True)
        if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as "postgres"
            shutil.chown(root, "postgres")
            for path in (self.data, self.sockets):
                shutil.chown(path, "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [f"{PG_BIN}/{tool}", *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def throwaway_postgres(tmp_path):
    if PG_BIN is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed here")
    root = Path(f"/tmp/pg-{os.getpid()}-{free_port()}")  # short path: socket names have a length limit
    cluster = ThrowawayPostgres(root)
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(root, ignore_errors=True)


def health(service: Service) -> tuple[int, dict]:
    response = requests.get(f"{service.url}/api/health", timeout=10)
    return response.status_code, response.json()


def wait_for(predicate, timeout: float, what: str):
    return wait_until(predicate, timeout, interval=0.2, message=f"timed out waiting for {what}")


def test_postgres_stopped_under_a_running_service(throwaway_postgres, tmp_path):
    service = Service(
        tmp_path,
        tuning=Tuning(**NO_HEALTH_CACHE),
        DATABASE_URL=throwaway_postgres.url,
        RATE_LIMIT_CHAT="10000/minute",
    )
    try:
        service.wait_healthy()
        assert widget_chat(service.url, {"message": "How do I deploy?"})[-1]["type"] == "done"

        throwaway_postgres.stop()
        status, body = wait_for(
            lambda: (lambda r: r if r[0] == 503 else None)(health(service)), 20, "degraded health"
        )
        assert body["status"] == "degraded" and body["services"]["database"]["state"] == "down"

        started = time.monotonic()
        refused = requests.post(f"{service.url}/api/chat", json={"message": "How do I deploy?"}, timeout=30)
        assert refused.status_code == 503 and time.monotonic() - started < 10  # fails fast, no stream
        assert refused.json()["error"] == "database_unavailable" and "Retry-After" in refused.headers

        throwaway_postgres.start()
        wait_for(lambda: health(service)[0] == 200, 30, "recovery without a restart")
        events = widget_chat(service.url, {"message": "How do I deploy?"})
        cid = events[0]["conversation_id"]
        stored = requests.get(f"{service.url}/api/conversation/{cid}", timeout=10).json()["messages"]
        assert [m["status"] for m in stored] == ["complete", "complete"]
    finally:
        service.stop()


def test_reader_leaving_abandons_the_gemini_request(tmp_path):
    with FakeGeminiProcess(api_key="fault-key", extra_args=("--tokens-per-second", "5")) as fake:
        fake.configure(reply_text=" ".join(f"word{i}" for i in range(60)))
        service = Service(
            tmp_path,
            tuning=Tuning(**NO_HEALTH_CACHE),
            GEMINI_API_KEY="fault-key",
            GEMINI_BASE_URL=fake.base_url,
            RATE_LIMIT_CHAT="10000/minute",
        )
        try:
            service.wait_healthy()
            cid = chat_then_leave(service.port, "How do I deploy to Hugging Face Spaces?")

            def stored_status():
                messages = requests.get(f"{service.url}/api/conversation/{cid}", timeout=10).json()[
                    "messages"
                ]
                return messages[1] if messages[1]["status"] != "streaming" else None

            assistant = wait_for(stored_status, 20, "the turn to be stored")
            assert assistant["status"] == "interrupted" and assistant["content"].startswith("word0")
            # Well before the 12 s the whole answer would take, the upstream request is dropped.
            wait_for(lambda: fake.abandoned_streams >= 1, 8, "the Gemini stream to be abandoned")
        finally:
            service.stop()


def stream_in_thread(url: str, results: list, index: int) -> threading.Thread:
    def run():
        try:
            results[index] = widget_chat(url, {"message": "How do I configure CORS for the widget?"})
        except Exception as exc:  # noqa: BLE001 - the assertion reports it
            results[index] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def active_streams(url: str) -> float:
    """The answers being streamed now, all workers (the chat_active_streams gauge)."""
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(
        requests.get(f"{url}/metrics", headers=METRICS_AUTH, timeout=5).text
    )
    return sum(s.value for family in families if family.name == "chat_active_streams" for s in family.samples)


def test_sigterm_lets_live_streams_finish(tmp_path):
    service = Service(
        tmp_path,
        tuning=Tuning(**typing_pace(40)),
        GUNICORN_CMD_ARGS="--graceful-timeout 30",
        RATE_LIMIT_CHAT="10000/minute",
    )
    try:
        service.wait_healthy()
        results: list = [None] * 4
        threads = [stream_in_thread(service.url, results, i) for i in range(4)]
        wait_until(lambda: active_streams(service.url) >= 4, timeout=20)  # each takes several seconds
        service.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert service.proc.wait(60) == 0
        for events in results:
            assert not isinstance(events, Exception), events
            assert events[-1]["type"] == "done" and len(events) > 10
    finally:
        service.stop()


def test_worker_recycling_does_not_cut_streams(tmp_path):
    # Health probes count towards max_requests too. Built once beforehand, the index makes each
    # new worker ready in well under a second, so a worker that is recycled while the test waits
    # for health (each lives about 12 requests) still reaches healthy before the next recycle.
    first = Service(tmp_path)
    try:
        first.wait_healthy(in_a_row=1)
    finally:
        first.stop()
    service = Service(
        tmp_path,
        tuning=Tuning(**typing_pace(20)),
        GUNICORN_CMD_ARGS="--max-requests 12",
        WEB_CONCURRENCY="1",
        RATE_LIMIT_CHAT="10000/minute",
    )
    try:
        service.wait_healthy(in_a_row=1, poll=1.0)  # a 503 probe counts too: give start-up time
        results: list = [None] * 16
        threads = []
        for i in range(16):
            threads.append(stream_in_thread(service.url, results, i))
            time.sleep(0.3)
        for t in threads:
            t.join(90)
        for events in results:
            assert not isinstance(events, Exception), events
            assert events[-1]["type"] == "done"
        assert service.log().count("Booting worker") >= 2  # a worker was in fact recycled
    finally:
        service.stop()


def test_a_slow_answer_gets_keep_alive_comments_the_widget_ignores(tmp_path):
    with FakeGeminiProcess(api_key="slow-key", extra_args=("--tokens-per-second", "1")) as fake:
        fake.configure(reply_text="Slowly but surely [1].")
        service = Service(
            tmp_path,
            GEMINI_API_KEY="slow-key",
            GEMINI_BASE_URL=fake.base_url,
            tuning=Tuning(keepalive_seconds=0.3),
            RATE_LIMIT_CHAT="10000/minute",
        )
        try:
            service.wait_healthy()
            response = requests.post(
                f"{service.url}/api/chat", json={"message": "How do I deploy?"}, timeout=60
            )
            raw = response.text
        finally:
            service.stop()
    assert ": keep-alive\n\n" in raw
    events = [json.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: ")]
    assert "".join(e["content"] for e in events if e["type"] == "token") == "Slowly but surely [1]."
    assert events[-1]["type"] == "done"


def test_database_down_at_start_serves_and_migrates_once_it_is_back(throwaway_postgres, tmp_path):
    throwaway_postgres.stop()  # Neon still waking up when the Space starts
    service = Service(
        tmp_path,
        tuning=Tuning(**NO_HEALTH_CACHE),
        DATABASE_URL=throwaway_postgres.url,
        RATE_LIMIT_CHAT="10000/minute",
    )
    try:
        status, body = wait_for(
            lambda: (
                (lambda r: r if r[1].get("status") == "degraded" else None)(health(service))
                if _up(service)
                else None
            ),
            60,
            "the service to serve with the database down",
        )
        assert status == 503 and body["services"]["database"]["state"] == "down"
        assert service.proc.poll() is None  # no crash loop
        down = requests.post(f"{service.url}/api/chat", json={"message": "How do I deploy?"}, timeout=30)
        assert down.status_code == 503 and down.json()["error"] == "database_unavailable"

        throwaway_postgres.start()
        wait_for(lambda: health(service)[0] == 200, 60, "migrations once the database is back")
        assert widget_chat(service.url, {"message": "How do I deploy?"})[-1]["type"] == "done"
        assert "Traceback" not in service.log()
    finally:
        service.stop()


def _up(service: Service) -> bool:
    try:
        requests.get(f"{service.url}/api/health/live", timeout=2)
        return True
    except requests.ConnectionError:
        return False
