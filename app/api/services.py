"""How a blueprint reaches the services built for this process."""

from __future__ import annotations

from flask import current_app

from app.services.container import Services


def services() -> Services:
    """The process's services (built once by `create_app`)."""
    return current_app.extensions["services"]
