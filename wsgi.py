"""The WSGI entry point: `gunicorn wsgi:app`, and FLASK_APP for the `flask` command."""

from app import ConfigError, create_app

try:
    app = create_app()
except ConfigError as exc:
    # One clear line, no traceback: the operator needs the variable's name, not a stack.
    raise SystemExit(f"Configuration error: {exc}") from None
