"""POST /api/chat: the widget's question in, a Server-Sent Events answer out."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from app.api import sse
from app.api.parsing import parse_json_body
from app.api.schemas import ChatAnswer, ChatRequest, wire
from app.api.security import cap_streams
from app.api.services import services, tuning
from app.services.chat import ChatQuestion
from app.services.chat_turn import ChatTurn

bp = Blueprint("chat", __name__, url_prefix="/api")

# Proxies (Hugging Face's, nginx) must pass each event through at once, not buffer the answer.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@bp.post("/chat")
@cap_streams  # at most Tuning.max_streams_per_client answers in progress per client
def chat() -> ResponseReturnValue:
    """Answer a question; streams metadata → token… → done, or one JSON object on request."""
    body = parse_json_body(ChatRequest)
    question = ChatQuestion(
        body.message, body.mode, body.context, body.conversation_id, body.format, body.page
    )
    turn = services().chat.start(question)  # unknown conversation, unavailable: see app/api/errors.py

    if _wants_json():
        return jsonify(wire(ChatAnswer, turn.collect()))
    return Response(_sse(turn), mimetype="text/event-stream", headers=SSE_HEADERS)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/event-stream", "application/json"])
    return best == "application/json"


def _sse(turn: ChatTurn) -> Iterator[str]:
    # When the reader disconnects, gunicorn closes this generator; sse_stream then closes the
    # turn's events, which store the answer as interrupted and abandon the upstream request.
    # A worker that stops mid-answer cuts the turn (turn.recorder): the response ends at once.
    return sse.sse_stream(
        turn.events(), keepalive_seconds=tuning().keepalive_seconds, interruption=turn.recorder
    )
