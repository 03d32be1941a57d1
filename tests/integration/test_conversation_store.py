"""The conversation store on a real database (SQLite, or PostgreSQL with TEST_DATABASE_URL)."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from app import create_app
from app.database import upgrade_database
from app.models import MessageStatus
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
    store.finish_turn(turn.assistant_message_id, TurnOutcome("answer [1]", MessageStatus.COMPLETE, sources, grounded=True, total_ms=12))
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


def test_answers_left_streaming_by_a_dead_worker_are_marked_interrupted(store):
    turn = store.open_turn(None, "q", "general", None)
    assert store.mark_abandoned_streams(older_than=timedelta(minutes=10)) == 0
    assert store.mark_abandoned_streams(older_than=timedelta(seconds=-1)) == 1
    assistant = store.get_messages(turn.conversation_id)[1]
    assert assistant.status == "interrupted"
