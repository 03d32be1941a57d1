"""The service's WSGI app with the tuning constants of TEST_TUNING applied (tests/tuning.py).

gunicorn runs `tests.tuned_wsgi:app` instead of `wsgi:app` for `Service(tuning=...)` in the
end-to-end tests; each worker applies the constants before it builds the app.
"""

from tests.tuning import apply_tuning

apply_tuning()

from wsgi import app  # noqa: E402 - after the constants are set

__all__ = ["app"]
