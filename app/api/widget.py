"""GET /widget.js and GET /widget.css: the chat widget a book adds with one script tag.

The script's URL is fixed in every book's config, so it is revalidated often (short max-age,
ETag); the stylesheet is fetched by the script under a content-hashed URL, so it is immutable.
A script tag and a stylesheet need no CORS; the widget's API calls go through ALLOWED_ORIGINS.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as WerkzeugResponse

bp = Blueprint("widget", __name__)

STATIC = Path(__file__).resolve().parent.parent / "static"
SCRIPT_MAX_AGE = 300  # five minutes: a fix reaches books quickly, and the ETag makes it cheap
IMMUTABLE_MAX_AGE = 31536000  # one year: the URL changes with the content
CSS_VERSION_MARK = "__WIDGET_CSS_VERSION__"


@functools.cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Both files read once, each with its content hash; the script names the stylesheet's hash."""
    css = (STATIC / "widget.css").read_bytes()
    css_hash = hashlib.sha256(css).hexdigest()[:16]
    js = (STATIC / "widget.js").read_bytes().replace(CSS_VERSION_MARK.encode(), css_hash.encode())
    return {"js": (js, hashlib.sha256(js).hexdigest()[:16]), "css": (css, css_hash)}


def _serve(kind: str, mimetype: str, max_age: int, immutable: bool) -> WerkzeugResponse:
    body, digest = _assets()[kind]
    response = Response(body, mimetype=mimetype)
    response.set_etag(digest)
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    if immutable:
        response.cache_control.immutable = True
    # Any book may load the files; with no credentials this never exposes anything.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response.make_conditional(request)


@bp.get("/widget.js")
def widget_script() -> ResponseReturnValue:
    """The widget's script (revalidated every few minutes)."""
    return _serve("js", "text/javascript", SCRIPT_MAX_AGE, immutable=False)


@bp.get("/widget.css")
def widget_stylesheet() -> ResponseReturnValue:
    """The widget's stylesheet, loaded into its shadow root when the panel first opens."""
    # Only the hashed URL may be cached for a year; a bare or stale ?v= is revalidated.
    hashed = request.args.get("v") == _assets()["css"][1]
    return _serve("css", "text/css", IMMUTABLE_MAX_AGE if hashed else SCRIPT_MAX_AGE, immutable=hashed)
