"""Retention: `flask purge` (by age, dry run, one conversation) and the automatic daily purge with
RETENTION_DAYS, claimed by one worker only. Conversations are made through the real chat API."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, event, func, select, text, update

from app import create_app
from app.config import normalise_database_url
from app.database import install_sqlite_pragmas, upgrade_database
from app.models import Conversation, Feedback, Message, RetentionState, utcnow
from app.services.retention import ConversationPurger, RetentionScheduler
from tests.conftest import parse_widget_stream


def ask(client, message="How do I water basil?", **body) -> dict:
    response = client.post("/api/chat", json={"message": message, **body})
    assert response.status_code == 200
    return parse_widget_stream(response.get_data(as_text=True))[0]  # conversation_id, message_id


def age(engine, conversation_id, days):
    """Move a whole conversation `days` into the past: its turns and its last activity."""
    moment = utcnow() - timedelta(days=days)
    conversation = uuid.UUID(conversation_id)
    with engine.begin() as conn:
        conn.execute(update(Message).where(Message.conversation_id == conversation).values(created_at=moment))
        conn.execute(
            update(Conversation)
            .where(Conversation.id == conversation)
            .values(created_at=moment, updated_at=moment)
        )


def counts(engine):
    with engine.connect() as conn:
        return tuple(
            conn.scalar(select(func.count()).select_from(model))
            for model in (Conversation, Message, Feedback)
        )


@pytest.fixture
def engine(app):
    from app.extensions import db

    with app.app_context():
        return db.engine


def purge(app, *args):
    return app.test_cli_runner().invoke(args=["purge", *args])


def test_purge_older_than_deletes_old_conversations_with_messages_and_votes(app, client, engine):
    old = [ask(client), ask(client, "Where should tomatoes grow?")]
    assert (
        client.post("/api/feedback", json={"message_id": old[0]["message_id"], "vote": "down"}).status_code
        == 201
    )
    recent = ask(client, "When is the first frost?")
    for meta in old:
        age(engine, meta["conversation_id"], days=40)
    age(engine, recent["conversation_id"], days=5)
    assert counts(engine) == (3, 6, 1)

    dry = purge(app, "--older-than", "30", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would delete 2 conversations, 4 messages, 1 votes")
    assert counts(engine) == (3, 6, 1)

    done = purge(app, "--older-than", "30", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"conversations": 2, "messages": 4, "feedback": 1, "dry_run": False}
    assert counts(engine) == (1, 2, 0)
    assert client.get(f"/api/conversation/{old[0]['conversation_id']}").status_code == 404
    assert client.get(f"/api/conversation/{recent['conversation_id']}").status_code == 200


def test_age_is_the_last_activity_not_the_first_message(app, client, engine):
    meta = ask(client)
    age(engine, meta["conversation_id"], days=40)
    ask(client, "And tomatoes?", conversation_id=meta["conversation_id"])  # the reader came back today
    result = purge(app, "--older-than", "30")
    assert result.stdout.startswith("deleted 0 conversations")
    assert len(client.get(f"/api/conversation/{meta['conversation_id']}").get_json()["messages"]) == 4


def test_deletes_go_in_batches_of_short_transactions(app, client, engine):
    for _ in range(5):
        age(engine, ask(client)["conversation_id"], days=40)
    commits = []

    def count_commit(_conn):
        commits.append(1)

    event.listen(engine, "commit", count_commit)
    try:
        from sqlalchemy.orm import sessionmaker

        result = ConversationPurger(sessionmaker(bind=engine), batch_size=2).purge_inactive_since(
            utcnow() - timedelta(days=30)
        )
    finally:
        event.remove(engine, "commit", count_commit)
    assert (result.conversations, result.messages) == (5, 10)
    assert len(commits) == 3  # 2 + 2 + 1: never one long transaction over everything
    assert counts(engine) == (0, 0, 0)


def test_purge_one_conversation_on_request(app, client, engine):
    keep, drop = ask(client), ask(client, "Where should tomatoes grow?")
    assert (
        client.post("/api/feedback", json={"message_id": drop["message_id"], "vote": "up"}).status_code == 201
    )
    result = purge(app, "--conversation", drop["conversation_id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deleted 1 conversations, 2 messages, 1 votes")
    assert client.get(f"/api/conversation/{drop['conversation_id']}").status_code == 404
    assert client.get(f"/api/conversation/{keep['conversation_id']}").status_code == 200

    missing = purge(app, "--conversation", str(uuid.uuid4()))
    assert missing.exit_code == 1 and "no conversation" in missing.output
    assert purge(app).exit_code == 2  # neither option
    assert purge(app, "--older-than", "3", "--conversation", keep["conversation_id"]).exit_code == 2
    assert purge(app, "--older-than", "0").exit_code == 2


def last_purge(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(RetentionState.last_purge_at, RetentionState.last_purge_conversations)
        ).first()


def test_the_service_purges_once_a_day_and_records_it(app, client, engine):
    age(engine, ask(client)["conversation_id"], days=40)
    scheduler = RetentionScheduler(engine, retention_days=30)
    first = scheduler.run_if_due()
    assert first is not None and first.conversations == 1
    recorded = last_purge(engine)
    assert recorded.last_purge_conversations == 1

    age(engine, ask(client)["conversation_id"], days=40)
    assert scheduler.run_if_due() is None  # purged less than a day ago, by anyone
    assert counts(engine)[0] == 1

    with engine.begin() as conn:
        conn.execute(update(RetentionState).values(last_purge_at=utcnow() - timedelta(days=1, minutes=1)))
    assert scheduler.run_if_due().conversations == 1
    assert counts(engine)[0] == 0


def hold_the_lock(engine):
    """Another worker in the middle of claiming the purge: it holds the lock a claim tries for."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        from app.services.retention import ADVISORY_LOCK_KEY

        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    return conn


def test_a_claim_never_waits_for_another_worker(app, client, engine, database_url):
    age(engine, ask(client)["conversation_id"], days=40)
    other = create_engine(normalise_database_url(database_url))
    install_sqlite_pragmas(other)
    holder = hold_the_lock(other)
    try:
        started = time.monotonic()
        assert RetentionScheduler(engine, retention_days=30).run_if_due() is None
        assert time.monotonic() - started < 2  # tried the lock; did not queue behind it
    finally:
        holder.rollback()
        holder.close()
        other.dispose()
    assert counts(engine)[0] == 1
    assert RetentionScheduler(engine, retention_days=30).run_if_due().conversations == 1


def test_one_worker_only_purges_when_several_check_at_once(app, client, engine, database_url):
    for _ in range(3):
        age(engine, ask(client)["conversation_id"], days=40)
    workers = 4
    engines = [
        create_engine(normalise_database_url(database_url)) for _ in range(workers)
    ]  # one per worker process
    for each in engines:
        install_sqlite_pragmas(each)
    start = threading.Barrier(workers)
    results = []

    def check(each):
        start.wait()
        results.append(RetentionScheduler(each, retention_days=30).run_if_due())

    threads = [threading.Thread(target=check, args=(each,)) for each in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for each in engines:
        each.dispose()
    purged = [result for result in results if result is not None]
    assert len(results) == workers and len(purged) == 1
    assert purged[0].conversations == 3 and counts(engine)[0] == 0


def test_with_retention_days_a_request_triggers_the_purge(make_settings):
    application = create_app(make_settings(retention_days=30))
    upgrade_database(application)
    services = application.extensions["services"]
    services.startup.run()
    from app.extensions import db

    with application.app_context():
        engine = db.engine
    client = application.test_client()
    services.retention.wait(10)  # start-up's own check (nothing old yet)
    old = ask(client)
    age(engine, old["conversation_id"], days=40)
    with engine.begin() as conn:  # start-up purged just now; pretend that was yesterday
        conn.execute(update(RetentionState).values(last_purge_at=utcnow() - timedelta(days=2)))
    services.retention._checked_at = None
    client.get("/api/health")
    services.retention.wait(10)
    assert client.get(f"/api/conversation/{old['conversation_id']}").status_code == 404
    assert last_purge(engine).last_purge_conversations == 1
    engine.dispose()


def test_without_retention_days_nothing_is_ever_purged(app, client, engine):
    assert app.extensions["services"].retention is None
    age(engine, ask(client)["conversation_id"], days=4000)
    client.get("/api/health")
    assert counts(engine)[0] == 1
