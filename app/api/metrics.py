"""GET /metrics: Prometheus text format, all gunicorn workers added up (see app/observability/metrics.py).

Not public: served only to a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`; with no
token configured the route answers 404, as if it did not exist.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from app.api.errors import ApiError
from app.api.services import services
from app.observability.metrics import render
from app.services.errors import ErrorCode

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """The metrics page for a Prometheus scraper (not rate-limited, not logged)."""
    token = services().settings.metrics_token
    expected = token.get_secret_value() if token is not None else ""
    if not expected:
        raise ApiError(404, "Not found.")
    sent = request.headers.get("Authorization", "")
    scheme, _, credentials = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>.",
            code=ErrorCode.UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = render()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
