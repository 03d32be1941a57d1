"""POST /api/feedback: a reader's thumbs up or down (and optional comment) on an answer."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.parsing import parse_json_body
from app.api.schemas import FeedbackReceipt, FeedbackRequest, wire
from app.api.services import services

bp = Blueprint("feedback", __name__, url_prefix="/api")


@bp.post("/feedback")
def feedback() -> ResponseReturnValue:
    """Record a vote: 201 the first time, 200 when it replaces an earlier vote."""
    body = parse_json_body(FeedbackRequest)
    stored = services().feedback.vote(
        body.message_id, body.vote, body.comment
    )  # 404/422/503: app/api/errors.py
    response = jsonify(wire(FeedbackReceipt, stored.as_dict()))
    response.status_code = 201 if stored.created else 200
    return response
