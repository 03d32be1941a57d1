"""GET /api/conversation/<id>: a conversation's turns, oldest first."""

from __future__ import annotations

import uuid

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.errors import ApiError
from app.api.schemas import Conversation, wire
from app.api.services import services

bp = Blueprint("conversations", __name__, url_prefix="/api/conversation")


@bp.get("/<conversation_id>")
def get_conversation(conversation_id: str) -> ResponseReturnValue:
    """The messages of a conversation (404 unknown, 422 malformed id)."""
    try:
        cid = uuid.UUID(conversation_id)
    except ValueError:
        raise ApiError(
            422,
            "conversation_id must be a UUID.",
            details=[{"field": "conversation_id", "problem": "not a UUID"}],
        ) from None
    messages = services().store.get_messages(cid)
    body = {
        "conversation_id": cid,
        "messages": [
            {
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "sources": m.sources,
                "created_at": m.created_at,
                "status": m.status,
                "mode": m.mode,
                "feedback": m.feedback,
            }
            for m in messages
        ],
    }
    return jsonify(wire(Conversation, body))
