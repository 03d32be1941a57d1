"""gunicorn settings: threaded workers for long-lived SSE answers, migrations once in the master.

Sizing for a 2-vCPU Space: answers are I/O-bound (waiting on Gemini and the reader's network), so
each worker runs many threads; two workers use both cores for retrieval and JSON work. Override
with WEB_CONCURRENCY and GUNICORN_THREADS.
"""

import os
import sys

from app.config import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    # One line, no traceback (gunicorn would print one for an ordinary exception here).
    sys.stderr.write(f"Configuration error: {exc}\n")
    raise SystemExit(1) from None

bind = f"0.0.0.0:{_settings.port}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# gthread workers heartbeat from their main loop, so a long stream never trips this timeout.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM or a worker recycle, live streams get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
# No control socket: it would be created under $HOME, outside the app's folder.
control_socket_disable = True


def on_starting(server):
    """Migrate the database once, in the master, before any worker exists."""
    from app import create_app
    from app.database import upgrade_database

    upgrade_database(create_app(_settings))
    server.log.info("database is up to date (%s)", _settings.database_label)


def post_worker_init(worker):
    """Start this worker's start-up work (index check) in the background; health says starting."""
    worker.wsgi.extensions["services"].startup.begin()
