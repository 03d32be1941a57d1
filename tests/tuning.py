"""Tuning constants changed in a service process, for end-to-end tests and bench/.

Tuning values are constants in code, not settings (docs/configuration.md). A live service that
a test or a benchmark needs with another value (a slow offline answer to interrupt, health checks
never cached, limits out of the way of traffic from one address) gets the constants in the
environment variable TEST_TUNING, a JSON object of `"module:NAME": value`, applied by its WSGI
module (tests/tuned_wsgi.py, bench/variants.py) before the app is built. In-process tests use
pytest's monkeypatch instead.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping

TUNING_ENV = "TEST_TUNING"


def tuning_env(constants: Mapping[str, object]) -> dict[str, str]:
    """The environment entry that hands `constants` to a service process."""
    return {TUNING_ENV: json.dumps(dict(constants))} if constants else {}


def apply_tuning(raw: str | None = None) -> None:
    """Set the constants named in TEST_TUNING (or `raw`); an unknown name is an error."""
    raw = os.environ.get(TUNING_ENV) if raw is None else raw
    for target, value in json.loads(raw or "{}").items():
        module_name, _, name = target.partition(":")
        module = importlib.import_module(module_name)
        if not hasattr(module, name):  # a renamed constant must fail the run, not be ignored
            raise AttributeError(f"{TUNING_ENV}: {module_name} has no {name}")
        setattr(module, name, value)
