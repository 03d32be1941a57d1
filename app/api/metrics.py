"""GET /metrics: Prometheus text format, all gunicorn workers added up (see app/observability/metrics.py)."""

from __future__ import annotations

from flask import Blueprint, Response

from app.observability.metrics import render

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """The metrics page for a Prometheus scraper (not rate-limited, not logged)."""
    body, content_type = render()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
