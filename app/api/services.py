"""How a blueprint reaches the services built for this process, and the tuning they were built with."""

from __future__ import annotations

from flask import current_app

from app.services.container import Services
from app.tuning import Tuning


def services() -> Services:
    """The process's services (built once by `create_app`)."""
    return current_app.extensions["services"]


def tuning() -> Tuning:
    """The app's tuning (given to `create_app`; `Tuning()` by default)."""
    tuning: Tuning = current_app.extensions["tuning"]
    return tuning
