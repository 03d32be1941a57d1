"""GET /docs: Swagger UI for /api/openapi.json, served entirely from this service (works offline).

The Swagger UI files come from the `flask-swagger-ui` wheel, which ships swagger-ui's dist (5.x,
the first major version that renders OpenAPI 3.1). Only its files are used, not its blueprint:
that one starts Swagger UI from an inline script, which the Content-Security-Policy
(`script-src 'self'`) forbids. Here the page loads the bundle and a small initializer, both
same-origin, and nothing else.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory, url_for
from flask.typing import ResponseReturnValue

bp = Blueprint("docs_ui", __name__)

# The only files served from the bundle (no source maps, no directory walking).
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})
_CACHE_SECONDS = 24 * 3600

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Docusaurus book chat: API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}" sizes="32x32">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec}"></div>
  <script src="{bundle}"></script>
  <script src="{init}"></script>
</body>
</html>
"""

_INIT = """// Starts Swagger UI on this page's OpenAPI document (no inline script: see the CSP).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
  });
});
"""


def swagger_ui_dist() -> Path:
    """The folder of swagger-ui's dist files inside the installed wheel."""
    return Path(str(resources.files("flask_swagger_ui") / "dist"))


# Resolved at import, so a missing package stops start-up instead of failing on the first visit.
_DIST = swagger_ui_dist()


@bp.get("/docs")
@bp.get("/docs/")
def page() -> ResponseReturnValue:
    """The Swagger UI page."""
    html = _PAGE.format(
        css=url_for("docs_ui.asset", filename="swagger-ui.css"),
        icon=url_for("docs_ui.asset", filename="favicon-32x32.png"),
        bundle=url_for("docs_ui.asset", filename="swagger-ui-bundle.js"),
        init=url_for("docs_ui.initializer"),
        spec=url_for("openapi.document"),
    )
    return Response(html, mimetype="text/html")


@bp.get("/docs/static/init.js")
def initializer() -> ResponseReturnValue:
    """The script that starts Swagger UI."""
    response = Response(_INIT, mimetype="text/javascript")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.get("/docs/static/<filename>")
def asset(filename: str) -> ResponseReturnValue:
    """One of Swagger UI's files."""
    if filename not in ASSETS:
        abort(404)
    return send_from_directory(_DIST, filename, max_age=_CACHE_SECONDS)
