"""POST /api/feedback: one vote per answer, changeable, stored and shown with the conversation."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from tests.conftest import parse_widget_stream


def answer(client, message="How do I water basil?", **body) -> dict:
    events = parse_widget_stream(
        client.post("/api/chat", json={"message": message, **body}).get_data(as_text=True)
    )
    return events[0]  # metadata: conversation_id, message_id (the answer)


def vote(client, message_id, value, comment=None):
    body = {"message_id": str(message_id), "vote": value}
    if comment is not None:
        body["comment"] = comment
    return client.post("/api/feedback", json=body)


def test_first_vote_is_201_and_shows_in_the_conversation(client):
    meta = answer(client)
    response = vote(client, meta["message_id"], "up", "Clear and cited.")
    assert response.status_code == 201
    body = response.get_json()
    assert body["message_id"] == meta["message_id"]
    assert body["conversation_id"] == meta["conversation_id"]
    assert (body["vote"], body["comment"]) == ("up", "Clear and cited.")
    assert body["created_at"] == body["updated_at"]

    messages = client.get(f"/api/conversation/{meta['conversation_id']}").get_json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["feedback"] is None
    assert messages[1]["feedback"] == {"vote": "up", "comment": "Clear and cited."}


def test_voting_again_changes_the_vote_and_replaces_the_comment(client):
    meta = answer(client)
    first = vote(client, meta["message_id"], "up", "nice").get_json()
    changed = vote(client, meta["message_id"], "down")
    assert changed.status_code == 200
    body = changed.get_json()
    assert (body["vote"], body["comment"]) == ("down", None)
    assert body["created_at"] == first["created_at"] and body["updated_at"] >= first["updated_at"]
    messages = client.get(f"/api/conversation/{meta['conversation_id']}").get_json()["messages"]
    assert messages[1]["feedback"] == {"vote": "down", "comment": None}


def test_one_row_per_message(app, client):
    from app.extensions import db
    from app.models import Feedback

    meta = answer(client)
    for value in ("up", "down", "up", "down"):
        vote(client, meta["message_id"], value)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Feedback)) == 1


def test_votes_belong_to_their_own_answer(client):
    first = answer(client)
    second = answer(client, "And rosemary?", conversation_id=first["conversation_id"])
    vote(client, first["message_id"], "down")
    vote(client, second["message_id"], "up")
    messages = client.get(f"/api/conversation/{first['conversation_id']}").get_json()["messages"]
    assert [m["feedback"] and m["feedback"]["vote"] for m in messages] == [None, "down", None, "up"]


def test_the_readers_own_message_cannot_be_voted_on(client):
    meta = answer(client)
    messages = client.get(f"/api/conversation/{meta['conversation_id']}").get_json()["messages"]
    response = vote(client, messages[0]["id"], "up")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error" and body["details"][0]["field"] == "message_id"


def test_unknown_message_is_404(client):
    response = vote(client, uuid.uuid4(), "up")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vote": "up"}, "message_id"),
        ({"message_id": "nope", "vote": "up"}, "message_id"),
        ({"message_id": "MID", "vote": "sideways"}, "vote"),
        ({"message_id": "MID"}, "vote"),
        ({"message_id": "MID", "vote": "up", "comment": "x" * 1001}, "comment"),
        ({"message_id": "MID", "vote": "up", "comment": "a\u0000b"}, "comment"),
        ({"message_id": "MID", "vote": "up", "comment": 5}, "comment"),
    ],
)
def test_bad_votes_are_422_naming_the_field(client, body, field):
    meta = answer(client)
    body = {k: (meta["message_id"] if v == "MID" else v) for k, v in body.items()}
    response = client.post("/api/feedback", json=body)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.get_json()["details"]]


def test_longest_comment_is_kept_whole(client):
    meta = answer(client)
    comment = "é" * 1000
    assert vote(client, meta["message_id"], "down", comment).status_code == 201
    messages = client.get(f"/api/conversation/{meta['conversation_id']}").get_json()["messages"]
    assert messages[1]["feedback"]["comment"] == comment


def test_empty_comment_is_stored_as_none(client):
    meta = answer(client)
    assert vote(client, meta["message_id"], "up", "").get_json()["comment"] is None


def test_simultaneous_first_votes_keep_one_row(app):
    client = app.test_client()
    meta = answer(client)
    message_id = uuid.UUID(meta["message_id"])
    feedback = app.extensions["services"].feedback
    results: list = []
    barrier = threading.Barrier(4)

    def cast(value: str) -> None:
        barrier.wait()
        results.append(feedback.vote(message_id, value))

    threads = [threading.Thread(target=cast, args=(v,)) for v in ("up", "down", "up", "down")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert sum(r.created for r in results) == 1
    messages = client.get(f"/api/conversation/{meta['conversation_id']}").get_json()["messages"]
    assert messages[1]["feedback"]["vote"] in ("up", "down")


def test_migration_0002_goes_down_and_up(app):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    from app.extensions import db

    with app.app_context():
        assert "feedback" in inspect(db.engine).get_table_names()
        downgrade(revision="0001")
        assert "feedback" not in inspect(db.engine).get_table_names()
        upgrade()
        assert "feedback" in inspect(db.engine).get_table_names()
        db.engine.dispose()
