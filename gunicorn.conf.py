"""gunicorn settings: threaded workers for long-lived SSE answers, migrations once in the master.

Sizing for a 2-vCPU Space, from bench.load (README, "Measured"): an answer holds one gunicorn
thread for its whole stream (about 2-3 s at Gemini's pace), so the service serves at most
workers × threads answers at once and every further reader waits for a thread before anything
happens. Two workers use both cores (each is one GIL); 128 threads each give 256 streams, room
for 200 concurrent readers with the uneven split between the two workers. Measured side by side
at 200 streams: 2 × 64 threads queued readers for seconds and dropped one; 2 × 128 served all.
Threads cost little while they wait (a worker's RSS grew 20-40 MB from 50 to 200 streams).
The limit past ~100 streams is CPU, not threads: 13-15 ms of CPU per Gemini answer in a burst
(36 ms before issue 14), so 2 cores have CPU for about 130 answers a second. gevent was not
adopted: the embedded index and SQLite are native calls that would block its one loop, and
threads are not what runs out.

Every value below is a default an operator overrides the way gunicorn itself reads them, not
through variables of ours: GUNICORN_CMD_ARGS (for example "--workers 4 --threads 64
--graceful-timeout 8 --access-logfile -"; gunicorn applies it over this file, and a bad value is
gunicorn's own one-line error) and WEB_CONCURRENCY (gunicorn's default for --workers).
"""

import os
import sys
from pathlib import Path

from app.config import ConfigError, load_settings, prepare_instance_path
from app.logging_setup import gunicorn_logger_class
from app.observability import metrics_folder as metrics_files

try:
    _settings = load_settings()
    prepare_instance_path(_settings)  # on_starting writes there first (SQLite migrations)
except ConfigError as exc:
    # One line, no traceback (gunicorn would print one for an ordinary exception here).
    sys.stderr.write(f"Configuration error: {exc}\n")
    raise SystemExit(1) from None

# Metrics from every worker land in files in this folder (in RAM: a full data disk must not kill
# workers, see app/observability/metrics_folder.py) and /metrics adds them up. prometheus_client
# reads the variable when it is first imported, so it is set now, before the app (or a worker)
# loads. With metrics off, no folder: each process keeps its unused samples in memory.
if _settings.metrics_enabled:
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(metrics_files.metrics_folder(_settings.instance_path))
    )

_METRICS_FOLDER = os.environ.get("PROMETHEUS_MULTIPROC_DIR")

bind = f"0.0.0.0:{_settings.port}"
# gthread whose main loop reads each request whole (with a deadline) before a thread serves it, so
# slow clients cost a socket, not a thread: see app/gunicorn_worker.py.
worker_class = "app.gunicorn_worker.BufferingThreadWorker"
# Open connections per worker, slow ones included (the worker raises its open-files limit to fit).
worker_connections = 2048
if "WEB_CONCURRENCY" not in os.environ:
    # gunicorn's own default for --workers comes from WEB_CONCURRENCY; a value here would hide it.
    workers = 2
threads = 128
# gthread workers heartbeat from their main loop, so a long stream never trips this timeout; it
# only catches a worker whose main loop is stuck. A Gemini wait is bounded per connect or read
# (gemini_timeout_seconds in app/tuning.py, 30 s).
timeout = 60
# On SIGTERM or a worker recycle, live streams get this long to finish. 8 s: Docker and podman
# send SIGKILL 10 s after SIGTERM by default (the Space's wait is not documented), and the workers
# and the master need the rest to exit. An answer still streaming at 8 s is cut; what it streamed
# is stored as interrupted (docs/deployment/hugging-face-spaces.md, "Stops and restarts").
graceful_timeout = 8
# The widget opens a new request per question; 5 s keeps a reader's connection for a quick follow-up
# without parking idle sockets for long (they cost no thread while idle in gthread).
keepalive = 5
# No worker recycling by default (the app does not leak); --max-requests turns it on, and live
# streams are drained first.
max_requests = 0
# The app writes one JSON line per request (with its request id and route); gunicorn's own access
# line would double every request. --access-logfile - brings it back.
accesslog = None
errorlog = "-"
logger_class = gunicorn_logger_class(_settings.log_format == "json")  # its lines as JSON too
loglevel = _settings.log_level.lower()
# No control socket: it would be created under $HOME, outside the app's folder.
control_socket_disable = True
# Worker heartbeat files in memory, not under /tmp: containers often have a slow or read-only /tmp.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def on_starting(server):
    """Empty the metrics folder and migrate the database once, in the master, before any worker."""
    if _METRICS_FOLDER:
        metrics_files.reset(Path(_METRICS_FOLDER))
    from app import create_app
    from app.database import MIGRATED_ENV, try_upgrade_database

    if try_upgrade_database(create_app(_settings)):
        os.environ[MIGRATED_ENV] = "1"  # inherited by the workers: they need not migrate
        server.log.info("database is up to date (%s)", _settings.database_label)
    else:
        # Serve anyway (health says the database is down); a worker migrates once it is back,
        # rather than the Space restarting in a loop while Neon wakes up.
        server.log.error(
            "database unreachable at start (%s); migrations will be retried", _settings.database_label
        )


def post_worker_init(worker):
    """Start this worker's start-up work (index check) in the background; health says starting.

    Also its heartbeat, and the watch that cuts answers still streaming shortly before the
    graceful timeout once the worker stops (app/services/live_turns.py).
    """
    services = worker.wsgi.extensions["services"]
    services.startup.begin()
    services.live_turns.stop_when(lambda: not worker.alive, worker.cfg.graceful_timeout)


def worker_int(worker):
    """SIGINT/SIGQUIT: a quick exit, so answers still streaming are stored as interrupted now."""
    services = _worker_services(worker)
    if services is not None:
        services.live_turns.cut()


def worker_exit(server, worker):
    """This worker is leaving: anything still live is stored, then its heartbeat is removed."""
    services = _worker_services(worker)
    if services is not None:
        services.live_turns.stop()


def _worker_services(worker):
    # None when the worker failed before its app was loaded.
    return getattr(getattr(worker, "wsgi", None), "extensions", {}).get("services")


def child_exit(server, worker):
    """A worker is gone: drop its live gauges (active streams, pool) from the sums.

    Its counter and histogram files stay: they hold counts that /metrics must keep adding up.
    """
    if _METRICS_FOLDER:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """gunicorn is stopping: the metrics folder goes too (it is in RAM)."""
    if _METRICS_FOLDER:
        metrics_files.remove(Path(_METRICS_FOLDER))
