"""POST /api/feedback: a reader's thumbs up or down (and optional comment) on an answer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import sessionmaker

from app.api.parsing import parse_json_body
from app.api.schemas import FeedbackRequest
from app.services.feedback import FeedbackStore

bp = Blueprint("feedback", __name__, url_prefix="/api")


@bp.post("/feedback")
def feedback() -> ResponseReturnValue:
    """Record a vote: 201 the first time, 200 when it replaces an earlier vote."""
    body = parse_json_body(FeedbackRequest)
    stored = store().vote(body.message_id, body.vote, body.comment)  # 404/422/503: app/api/errors.py
    response = jsonify(stored.as_dict())
    response.status_code = 201 if stored.created else 200
    return response


def store() -> FeedbackStore:
    """This app's feedback store (built on first use, on the app's database engine)."""
    existing = current_app.extensions.get("feedback_store")
    if existing is None:
        from app.extensions import db

        existing = FeedbackStore(sessionmaker(bind=db.engine, expire_on_commit=False))
        current_app.extensions["feedback_store"] = existing
    return existing
