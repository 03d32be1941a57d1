"""Tuning for a service process that tests and bench/ start, handed over in the environment.

Tuning values are constants in code, not settings (docs/configuration.md, app/tuning.py). In-process
tests build the app with their own `Tuning` (`create_app(settings, tuning)`, the `tuning` fixture).
A live service (gunicorn, which imports its app by name) that a test or a benchmark needs with
other values gets them in the environment variable TEST_TUNING: a JSON object of `Tuning` field
names and values, read by its WSGI module (tests/tuned_wsgi.py, bench/variants.py), which builds
the app with `Tuning(**fields)`. A field that does not exist, or a value of the wrong type, fails
the run: a renamed field must not be ignored.
"""

from __future__ import annotations

import dataclasses
import json
import os

from app.tuning import Tuning

TUNING_ENV = "TEST_TUNING"


def tuning_env(tuning: Tuning | None) -> dict[str, str]:
    """The environment entry that hands `tuning` to a service process: the fields that differ
    from the defaults (none: no entry)."""
    if tuning is None:
        return {}
    default = Tuning()
    changed = {
        f.name: getattr(tuning, f.name)
        for f in dataclasses.fields(Tuning)
        if getattr(tuning, f.name) != getattr(default, f.name)
    }
    return {TUNING_ENV: json.dumps(changed)} if changed else {}


def tuning_from_env(raw: str | None = None) -> Tuning:
    """The Tuning of TEST_TUNING (or `raw`), the defaults without it; unknown fields and values of
    the wrong type are errors."""
    raw = os.environ.get(TUNING_ENV) if raw is None else raw
    fields = json.loads(raw or "{}")
    if not isinstance(fields, dict):
        raise ValueError(f"{TUNING_ENV}: a JSON object of Tuning fields, not {type(fields).__name__}")
    types = {f.name: type(f.default) for f in dataclasses.fields(Tuning)}
    unknown = sorted(set(fields) - set(types))
    if unknown:
        raise ValueError(f"{TUNING_ENV}: Tuning has no field {', '.join(unknown)}; known: {', '.join(types)}")
    for name, value in fields.items():
        expected = (int, float) if types[name] is float else types[name]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ValueError(f"{TUNING_ENV}: {name} must be a {types[name].__name__}, not {value!r}")
    return Tuning(**fields)
