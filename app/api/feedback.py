"""POST /api/feedback: a reader's thumbs up or down (and optional comment) on an answer."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from app.api.errors import ApiError
from app.api.parsing import parse_json_body
from app.api.schemas import FeedbackRequest
from app.services.feedback import FeedbackStore, MessageNotFound, NotAnAnswer

log = logging.getLogger(__name__)

bp = Blueprint("feedback", __name__, url_prefix="/api")


@bp.post("/feedback")
def feedback() -> ResponseReturnValue:
    """Record a vote: 201 the first time, 200 when it replaces an earlier vote."""
    body = parse_json_body(FeedbackRequest)
    try:
        stored = store().vote(body.message_id, body.vote, body.comment)
    except MessageNotFound:
        raise ApiError(404, "No message with this id.") from None
    except NotAnAnswer:
        raise ApiError(
            422,
            "Invalid request: message_id.",
            details=[{"field": "message_id", "problem": "is the reader's message; only answers can be voted on"}],
        ) from None
    except SQLAlchemyError as exc:
        log.warning("cannot store feedback: %s", type(exc).__name__)
        raise ApiError(
            503, "Feedback cannot be stored right now; please retry shortly.", code="database_unavailable",
            headers={"Retry-After": "5"},
        ) from None
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
