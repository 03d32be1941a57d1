"""Health probes: readiness with dependency states, and bare liveness."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app.api.schemas import Health, Liveness, wire
from app.api.services import services

bp = Blueprint("health", __name__, url_prefix="/api/health")


@bp.get("")
def health() -> ResponseReturnValue:
    """200 healthy when ready; 503 starting / degraded / unhealthy otherwise."""
    report = services().health.report()
    response = jsonify(wire(Health, report.as_dict()))
    response.status_code = report.http_status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/live")
def live() -> ResponseReturnValue:
    """200 while the process serves requests (for container health checks)."""
    return jsonify(wire(Liveness, {"status": "alive"}))
