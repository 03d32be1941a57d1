"""GET /: what this service is and where its API is described."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

bp = Blueprint("root", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """Name, version and the API's entry points."""
    from app import __version__

    return jsonify(
        service="docusaurus-book-chat",
        description="Chat backend for a Docusaurus book: hybrid retrieval, grounded answers, SSE.",
        version=__version__,
        docs="/docs",
        endpoints={
            "chat": "POST /api/chat",
            "conversation": "GET /api/conversation/<id>",
            "health": "GET /api/health",
            "liveness": "GET /api/health/live",
        },
    )
