"""The service's WSGI app built with the Tuning of TEST_TUNING (tests/tuning.py).

gunicorn runs `tests.tuned_wsgi:app` instead of `wsgi:app` for `Service(tuning=...)` in the
end-to-end tests; each worker builds the app with that tuning.
"""

from app import ConfigError, create_app
from tests.tuning import tuning_from_env

try:
    app = create_app(tuning=tuning_from_env())
except ConfigError as exc:  # as wsgi.py says it
    raise SystemExit(f"Configuration error: {exc}") from None

__all__ = ["app"]
