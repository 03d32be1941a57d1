"""Stops mid-answer, for real: gunicorn stopped with SIGTERM while an answer longer than its
graceful timeout streams, and `kill -9` of one instance while another shares its PostgreSQL.

Answers come from the fake Gemini server, paced slower than the stop: the stream is waiting on
"Gemini" for its next piece when the stop comes.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from app.config import normalise_database_url
from app.services.live_turns import CHECKPOINT_SECONDS, STALE_AFTER, SWEEP_SECONDS
from app.tuning import Tuning
from tests.conftest import TEST_DATABASE_URL, empty_postgres_tables
from tests.fakes.gemini_server import FakeGeminiProcess
from tests.support.service import NO_HEALTH_CACHE, Service
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

KEY = "stop-key"
LONG_ANSWER = " ".join(f"word{i}" for i in range(200))


class LiveReader:
    """A widget-like reader on its own thread: the events so far, as they arrive."""

    def __init__(self, url: str, question: str = "How do I deploy to Hugging Face Spaces?") -> None:
        self.events: list[dict] = []
        self.ended_at: float | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._read, args=(url, question), daemon=True)
        self._thread.start()

    def _read(self, url: str, question: str) -> None:
        try:
            with requests.post(
                f"{url}/api/chat", json={"message": question}, stream=True, timeout=120
            ) as response:
                assert response.status_code == 200, response.text
                buffer = ""
                for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
                    buffer += chunk
                    lines = buffer.split("\n")
                    buffer = lines.pop()
                    self.events.extend(json.loads(line[6:]) for line in lines if line.startswith("data: "))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.error = exc
        self.ended_at = time.monotonic()

    def tokens(self) -> list[str]:
        return [e["content"] for e in list(self.events) if e["type"] == "token"]

    def wait_tokens(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.tokens()) < count:
            assert self.error is None and self.ended_at is None, (self.error, self.events)
            assert time.monotonic() < deadline, f"fewer than {count} tokens in {timeout}s"
            time.sleep(0.05)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def answer_row(url: str, message_id: str) -> dict:
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as conn:
            row = (
                conn.execute(
                    text("SELECT status, content, error_code, worker_id FROM messages WHERE id = :id"),
                    {"id": message_id if url.startswith("postgres") else message_id.replace("-", "")},
                )
                .mappings()
                .one()
            )
            return dict(row)
    finally:
        engine.dispose()


def wait_for(predicate, timeout: float, what: str):
    return wait_until(predicate, timeout, interval=0.2, message=f"timed out waiting for {what}")


def kill_instance(service: Service) -> None:
    """kill -9 of an instance: master frozen first, so no worker is replaced or stopped politely."""
    master = service.proc.pid
    os.kill(master, signal.SIGSTOP)
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    os.kill(master, signal.SIGKILL)
    service.proc.wait(10)


def test_sigterm_mid_answer_stores_the_text_and_closes_the_stream(tmp_path):
    # 2 pieces a second for 200 words: 100 s of answer, against a 4 s graceful timeout.
    with FakeGeminiProcess(api_key=KEY, extra_args=("--tokens-per-second", "2")) as fake:
        fake.configure(reply_text=LONG_ANSWER)
        service = Service(
            tmp_path,
            GEMINI_API_KEY=KEY,
            GEMINI_BASE_URL=fake.base_url,
            WEB_CONCURRENCY="1",
            GUNICORN_CMD_ARGS="--graceful-timeout 4",
            RATE_LIMIT_CHAT="10000/minute",
            tuning=Tuning(**NO_HEALTH_CACHE),
        )
        try:
            service.wait_healthy(in_a_row=2)
            reader = LiveReader(service.url)
            reader.wait_tokens(3)
            stopped = time.monotonic()
            service.proc.send_signal(signal.SIGTERM)
            reader.join(30)
            assert service.proc.wait(30) == 0
            exited = time.monotonic()
        finally:
            service.stop()

    assert reader.error is None, reader.error
    kinds = [e["type"] for e in reader.events]
    assert kinds[0] == "metadata" and kinds[-3:] == ["token", "error", "done"]
    assert reader.events[-2]["code"] == "shutdown" and "cut short" in reader.events[-3]["content"]
    # Before gunicorn's kill at 4 s, and not at once: live answers get their chance to finish.
    assert 1.0 < reader.ended_at - stopped < 4.0
    # The worker leaves right after the cut; no hang until some later kill (a loaded machine
    # takes a second or two more to tear the processes down).
    assert exited - stopped < 4 + 5, service.log_path.read_text()[-4000:]
    streamed = "".join(reader.tokens()[:-1])
    assert streamed.startswith("word0 word1 word2")
    database = service.env.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'instance' / 'chat.db'}"
    row = answer_row(database, reader.events[0]["message_id"])
    assert (row["status"], row["error_code"]) == ("interrupted", "shutdown")
    assert row["content"] == streamed
    assert "Traceback" not in service.log_path.read_text()


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="two instances share one PostgreSQL: set TEST_DATABASE_URL")
def test_two_instances_a_live_stream_is_left_alone_and_a_killed_ones_is_swept(tmp_path):
    empty_postgres_tables(TEST_DATABASE_URL)
    # 5 pieces a second for 200 words: 40 s of answer, longer than this test needs.
    with FakeGeminiProcess(api_key=KEY, extra_args=("--tokens-per-second", "5")) as fake:
        fake.configure(reply_text=LONG_ANSWER)
        common = dict(
            GEMINI_API_KEY=KEY,
            GEMINI_BASE_URL=fake.base_url,
            WEB_CONCURRENCY="1",
            RATE_LIMIT_CHAT="10000/minute",
            tuning=Tuning(**NO_HEALTH_CACHE),
        )
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = Service(tmp_path / "a", **common)
        b = None
        try:
            a.wait_healthy(in_a_row=2)
            reader = LiveReader(a.url)
            reader.wait_tokens(3)
            message_id = reader.events[0]["message_id"]
            # Old as the hills: the old age-based sweep took such a row for abandoned.
            engine = create_engine(normalise_database_url(TEST_DATABASE_URL))
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE messages SET created_at = created_at - interval '1 day' WHERE id = :id"),
                    {"id": message_id},
                )
            engine.dispose()

            b = Service(tmp_path / "b", **common)
            b.wait_healthy(in_a_row=2)  # B's start-up sweep has run
            b_reader = LiveReader(b.url)  # B serving too: it sweeps periodically while it does
            b_reader.wait_tokens(1)
            time.sleep(SWEEP_SECONDS + 1)
            assert answer_row(TEST_DATABASE_URL, message_id)["status"] == "streaming"
            saved = answer_row(TEST_DATABASE_URL, message_id)["content"]
            assert saved and "".join(reader.tokens()).startswith(saved)  # saved while it streams

            reader.wait_tokens(len(reader.tokens()) + 2)
            kill_instance(a)
            killed = time.monotonic()
            received = "".join(reader.tokens())
            limit = (STALE_AFTER + timedelta(seconds=SWEEP_SECONDS + 10)).total_seconds()
            row = wait_for(
                lambda: (lambda r: r if r["status"] != "streaming" else None)(
                    answer_row(TEST_DATABASE_URL, message_id)
                ),
                limit,
                "B's sweep to mark A's answer",
            )
            swept_after = time.monotonic() - killed
        finally:
            if b is not None:
                b.stop()
            a.stop()

    assert (row["status"], row["error_code"]) == ("interrupted", "worker_stopped")
    assert swept_after > STALE_AFTER.total_seconds() - 5  # only once A's heartbeat was stale
    # The text saved at A's last checkpoint: at most a few seconds (5 pieces/s) behind the reader.
    assert row["content"] and received.startswith(row["content"])
    lost_words = len(received.split()) - len(row["content"].split())
    assert lost_words <= 5 * (CHECKPOINT_SECONDS + 1)
