"""End to end: conversations made through a live gunicorn, read by `flask report` as from a laptop,
then purged by a restarted service with RETENTION_DAYS, by one of its two workers only."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import requests
from sqlalchemy import create_engine, select, text, update

from app.config import normalise_database_url
from app.models import Conversation, Message, RetentionState, utcnow
from app.tuning import Tuning
from tests.conftest import FIXTURE_BOOK, ROOT, TEST_DATABASE_URL, reset_postgres
from tests.support.service import NO_HEALTH_CACHE, Service, widget_chat
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


def test_live_service_report_and_daily_purge(tmp_path):
    if TEST_DATABASE_URL:
        reset_postgres(TEST_DATABASE_URL)
    database_url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'instance' / 'chat.db'}"
    common = dict(DOCS_PATH=str(FIXTURE_BOOK), DATABASE_URL=database_url, tuning=Tuning(**NO_HEALTH_CACHE))

    first = Service(tmp_path, **common)
    try:
        first.wait_healthy()
        asked = [
            widget_chat(first.url, {"message": m})
            for m in (
                "How do I water basil?",
                "quantum chromodynamics lattice?",
                "Quantum chromodynamics lattices",
            )
        ]
        vote = {"message_id": asked[0][0]["message_id"], "vote": "down", "comment": "Too short"}
        assert requests.post(f"{first.url}/api/feedback", json=vote, timeout=10).status_code == 201
    finally:
        first.stop()

    # A laptop: only DATABASE_URL (and FLASK_APP) set.
    env = {
        "PATH": "/usr/bin:/bin",
        "FLASK_APP": "wsgi",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "laptop"),
    }
    report = subprocess.run(
        [sys.executable, "-m", "flask", "report", "--json", "--since", "1h"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["volume"]["questions"] == 3 and body["volume"]["not_covered"] == 2
    assert [(gap["count"], gap["wordings"]) for gap in body["gaps"]] == [(2, 2)]
    assert body["weak_answers"]["answers"][0]["comment"] == "Too short"

    engine = create_engine(normalise_database_url(database_url))
    old = [uuid.UUID(events[0]["conversation_id"]) for events in asked[:2]]
    moment = utcnow() - timedelta(days=40)
    with engine.begin() as conn:
        conn.execute(update(Message).where(Message.conversation_id.in_(old)).values(created_at=moment))
        conn.execute(update(Conversation).where(Conversation.id.in_(old)).values(updated_at=moment))

    (tmp_path / "second").mkdir()
    second = Service(tmp_path / "second", RETENTION_DAYS="30", **common)
    try:
        second.wait_healthy()

        def purged_the_two_old_conversations() -> bool:
            with engine.connect() as conn:
                left = conn.scalar(text("SELECT count(*) FROM conversations"))
                purged = conn.execute(select(RetentionState.last_purge_conversations)).scalar()
            return left == 1 and purged == 2

        wait_until(
            purged_the_two_old_conversations,
            timeout=30,
            interval=0.2,
            message=lambda: f"the purge did not run\n{second.log()}",
        )
        log = second.log()
    finally:
        second.stop()
        engine.dispose()
    # Both workers checked at start; one deleted, the other found the day's purge done.
    assert log.count("retention: deleted 2 conversations") == 1, log
