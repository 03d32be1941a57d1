"""The conversation store on a real database (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import sessionmaker

from app import create_app
from app.database import upgrade_database
from app.models import Message, MessageStatus, WorkerHeartbeat, utcnow
from app.services.conversations import ConversationNotFound, ConversationStore, TurnOutcome


@pytest.fixture
def store(make_settings):
    settings = make_settings(index_on_start=False)
    upgrade_database(create_app(settings))
    engine = create_engine(settings.sqlalchemy_url)
    yield ConversationStore(sessionmaker(bind=engine, expire_on_commit=False))
    engine.dispose()


def test_the_question_is_stored_before_any_answer(store):
    turn = store.open_turn(None, "How do I water basil?", "general", None)
    messages = store.get_messages(turn.conversation_id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "How do I water basil?", "complete"),
        ("assistant", "", "streaming"),
    ]


def test_finished_turn_keeps_text_sources_and_status(store):
    turn = store.open_turn(None, "q", "selection", "selected text")
    sources = [{"file": "a.md", "heading": "A", "similarity": 1.0}]
    store.finish_turn(
        turn.assistant_message_id,
        TurnOutcome("answer [1]", MessageStatus.COMPLETE, sources, grounded=True, total_ms=12),
    )
    user, assistant = store.get_messages(turn.conversation_id)
    assert user.mode == "selection"
    assert (assistant.content, assistant.status, assistant.sources) == ("answer [1]", "complete", sources)


def test_follow_up_sees_the_earlier_turns_as_history(store):
    first = store.open_turn(None, "first question", "general", None)
    store.finish_turn(first.assistant_message_id, TurnOutcome("first answer", MessageStatus.COMPLETE))
    second = store.open_turn(first.conversation_id, "and then?", "general", None)
    assert second.conversation_id == first.conversation_id
    assert second.history == [("user", "first question"), ("assistant", "first answer")]
    assert len(store.get_messages(first.conversation_id)) == 4


def test_unknown_conversation_is_refused_without_writing(store):
    with pytest.raises(ConversationNotFound):
        store.open_turn(uuid.uuid4(), "hello", "general", None)
    with pytest.raises(ConversationNotFound):
        store.get_messages(uuid.uuid4())


def _backdate(store, model, key, **values):
    with store._session_factory() as session, session.begin():
        session.execute(update(model).where(model.id == key).values(**values))


STALE = timedelta(seconds=20)


def _answer(store, turn):
    return next(m for m in store.get_messages(turn.conversation_id) if m.id == turn.assistant_message_id)


def test_an_answer_of_a_live_worker_is_never_swept_however_old(store):
    store.beat("worker-a", "host-a", 1)
    turn = store.open_turn(None, "q", "general", None, worker_id="worker-a")
    _backdate(store, Message, turn.assistant_message_id, created_at=utcnow() - timedelta(days=1))
    assert store.mark_abandoned_streams(STALE) == 0
    assert _answer(store, turn).status == "streaming"


def test_answers_of_a_worker_gone_silent_are_interrupted_with_the_text_saved_so_far(store):
    store.beat("worker-a", "host-a", 1)
    store.beat("worker-b", "host-b", 2)
    gone = store.open_turn(None, "q", "general", None, worker_id="worker-a")
    live = store.open_turn(None, "q", "general", None, worker_id="worker-b")
    assert (
        store.save_partial_answers(
            {gone.assistant_message_id: "The first half", live.assistant_message_id: "Still"}
        )
        == 2
    )
    _backdate(store, WorkerHeartbeat, "worker-a", beat_at=utcnow() - timedelta(seconds=30))

    assert store.mark_abandoned_streams(STALE) == 1
    with store._session_factory() as session:
        assistant = session.get(Message, gone.assistant_message_id)
    assert (assistant.status, assistant.content, assistant.error_code) == (
        "interrupted",
        "The first half",
        "worker_stopped",
    )
    assert _answer(store, live).status == "streaming"
    with store._session_factory() as session:  # the dead worker's heartbeat is gone with it
        workers = set(session.scalars(select(WorkerHeartbeat.id)))
    assert "worker-b" in workers and "worker-a" not in workers


def test_an_answer_whose_worker_row_was_removed_is_swept_at_once(store):
    store.beat("worker-a", "host-a", 1)
    turn = store.open_turn(None, "q", "general", None, worker_id="worker-a")
    store.forget_worker("worker-a")
    assert store.mark_abandoned_streams(STALE) == 1
    assert _answer(store, turn).status == "interrupted"


def test_a_beat_recreates_a_heartbeat_swept_while_its_worker_was_slow(store):
    store.beat("worker-a", "host-a", 1)
    _backdate(store, WorkerHeartbeat, "worker-a", beat_at=utcnow() - timedelta(minutes=5))
    store.mark_abandoned_streams(STALE)
    store.beat("worker-a", "host-a", 1)
    turn = store.open_turn(None, "q", "general", None, worker_id="worker-a")
    assert store.mark_abandoned_streams(STALE) == 0
    assert _answer(store, turn).status == "streaming"


def test_unowned_answers_from_before_heartbeats_are_swept_after_ten_minutes(store):
    old = store.open_turn(None, "q", "general", None)
    recent = store.open_turn(None, "q", "general", None)
    _backdate(store, Message, old.assistant_message_id, created_at=utcnow() - timedelta(minutes=11))
    assert store.mark_abandoned_streams(STALE) == 1
    assert _answer(store, old).status == "interrupted"
    assert _answer(store, recent).status == "streaming"


def test_a_late_checkpoint_never_overwrites_the_final_answer(store):
    turn = store.open_turn(None, "q", "general", None)
    store.finish_turn(turn.assistant_message_id, TurnOutcome("The whole answer.", MessageStatus.COMPLETE))
    assert store.save_partial_answers({turn.assistant_message_id: "The whole"}) == 0
    assert _answer(store, turn).content == "The whole answer."
