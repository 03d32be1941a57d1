"""GET /: the service's name and entry points (JSON), or a small chat page for a browser."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from app.api.schemas import ServiceInfo, wire
from app.version import __version__

bp = Blueprint("root", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """Name, version and the API's entry points; a browser asking for HTML gets the chat page."""
    if _wants_html():
        # Plain HTML with one same-origin script and style sheet: no inline script or style, so
        # it runs under a strict Content-Security-Policy.
        response = Response(render_template("chat.html", version=__version__), mimetype="text/html")
    else:
        info = ServiceInfo(
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
        response = jsonify(wire(ServiceInfo, info))
    # The same URL answers two ways: caches must key on Accept.
    response.vary.add("Accept")
    return response


def _wants_html() -> bool:
    """True for a browser (text/html ranked first); curl, fetch and SDKs send */* or JSON."""
    # On a tie (*/*, or no Accept header) the first offer wins: API clients keep getting JSON.
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
