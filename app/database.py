"""Engine options for SQLite (the embedded default) and PostgreSQL (Neon in production)."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any

import psycopg2
import psycopg2.extensions
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from app.config import Settings

log = logging.getLogger(__name__)

# PostgreSQL pool per worker process. Constants, not settings: a stream holds a connection only
# for its short reads and writes, so 5 + 10 per worker is never the limit (bench/README.md, pool
# under 200 streams), and 2 workers × 15 = 30 stays under Neon's smallest pooler limits.
POOL_SIZE = 5
MAX_OVERFLOW = 10
# Neon's pooler drops idle connections after a few minutes; recycling at 5 minutes (with pre-ping)
# means a reader never meets a dead one. Nothing an operator tunes.
POOL_RECYCLE_SECONDS = 300
# The longest statement the service runs takes milliseconds; 15 s only stops a runaway query (a
# lock wait, a sick database) from holding a worker thread. Set per transaction (see below).
STATEMENT_TIMEOUT_MS = 15_000
# A reader waits at most this long for one of the pool's 15 connections. Under 200 streams none
# waited at all (bench/README.md), so a wait this long means the connections are stuck on a
# database that does not answer: a 503 now beats a chat that hangs (it was 10 s).
POOL_TIMEOUT_SECONDS = 3
# libpq's own timeout for opening a connection (TCP, TLS, login). Neon wakes a suspended compute
# in a few hundred milliseconds, up to a few seconds: 5 s lets it wake, and bounds a dead path.
CONNECT_TIMEOUT_SECONDS = 5
# The kernel's detection of a path that drops packets (a dead NAT, a vanished host): an idle
# connection is probed after 10 s, and declared dead after 3 unanswered probes 2 s apart; data
# sent and not acknowledged for 5 s fails the connection. Neither fires when the far end's kernel
# still answers (a hung pooler or proxy ACKs and answers probes: measured, bench/README.md), so
# the client-side deadlines below are what bound a stalled path.
TCP_KEEPALIVE_IDLE_SECONDS = 10
TCP_KEEPALIVE_INTERVAL_SECONDS = 2
TCP_KEEPALIVE_COUNT = 3
TCP_USER_TIMEOUT_MS = 5_000
# Client-side deadlines, enforced by the wait callback (install_client_deadlines). A pool
# pre-ping is a `SELECT 1` that answers in milliseconds: no answer in 2 s means the path is hung.
PING_DEADLINE_SECONDS = 2.0
# Any other statement: past the server's own statement timeout, the server would have answered
# (a result or its timeout error) if it could; silence by then means a dead path.
STATEMENT_DEADLINE_SECONDS = STATEMENT_TIMEOUT_MS / 1000 + 2
# After one of those deadlines fired, new connections are refused at once for this long (a 503
# in milliseconds), then tried again by one thread: health checks every 3 s notice the return.
DEAD_PATH_SECONDS = 2.0


def engine_options(settings: Settings) -> dict[str, Any]:
    """SQLAlchemy engine options suited to the configured database."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        # Several threads and worker processes share one file: wait for locks, don't fail.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {
        "pool_pre_ping": True,  # Neon closes idle connections; test before use, reconnect quietly
        "pool_recycle": POOL_RECYCLE_SECONDS,
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "pool_timeout": POOL_TIMEOUT_SECONDS,
        # libpq client options (Neon's pooler rejects start-up options, and never sees these).
        "connect_args": {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "keepalives": 1,
            "keepalives_idle": TCP_KEEPALIVE_IDLE_SECONDS,
            "keepalives_interval": TCP_KEEPALIVE_INTERVAL_SECONDS,
            "keepalives_count": TCP_KEEPALIVE_COUNT,
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,  # libpq 12 or later (psycopg2's wheels: 17)
            "application_name": "docusaurus-chat",
        },
    }


def install_postgres_session_settings(engine: Engine, statement_timeout_ms: int | None = None) -> None:
    """Bound every statement's time, per transaction: `SET LOCAL statement_timeout` at each BEGIN.

    Per transaction, not per connection: behind a pooler in transaction mode (Neon's pooled
    URLs, PgBouncer) each transaction may run on another server connection, so a SET once per
    connection would bound only the server connection it happened to land on, and leak to the
    pool's other clients. `SET LOCAL` ends with its transaction. Neon's pooler also rejects
    start-up `options`, so the timeout cannot go in the URL. (`ALTER ROLE … SET
    statement_timeout` on Neon is a backstop for statements outside a transaction:
    docs/configuration.md.)
    """
    if statement_timeout_ms is None:
        statement_timeout_ms = STATEMENT_TIMEOUT_MS
    if engine.dialect.name != "postgresql" or statement_timeout_ms <= 0:
        return
    statement = f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # On the DBAPI connection: psycopg2 opens the transaction with this first statement,
        # and SQLAlchemy's own execute would begin (and call this hook) again.
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()


class DeadlineExceeded(psycopg2.OperationalError):
    """The database did not answer within the client-side deadline; the connection is closed."""


_deadline = threading.local()  # .seconds: this thread's deadline for the wait in progress


def wait_with_deadline(conn: Any) -> None:
    """psycopg2's wait callback: libpq's waits for the server, each with a deadline.

    psycopg2 has no socket timeout, and blocking libpq waits in poll() with none: a stalled path
    (measured: a SIGSTOPped proxy in front of PostgreSQL, bench/README.md) hangs a statement for as
    long as the stall, keepalives and tcp_user_timeout notwithstanding, since the proxy's kernel
    acknowledges every byte and probe. With a wait callback psycopg2 drives libpq asynchronously
    and calls this for every wait, so it can stop waiting. Raising here makes psycopg2 close the
    connection, which SQLAlchemy then treats as a disconnect and never reuses.
    """
    if conn.status == psycopg2.extensions.STATUS_SETUP:
        # Opening: asynchronous libpq ignores connect_timeout, so it is enforced here.
        seconds = float(
            psycopg2.extensions.parse_dsn(conn.dsn).get("connect_timeout") or CONNECT_TIMEOUT_SECONDS
        )
    else:
        seconds = getattr(_deadline, "seconds", None) or STATEMENT_DEADLINE_SECONDS
    deadline = time.monotonic() + seconds
    poller = select.poll()  # not select.select: no limit on the descriptor's number
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        events = select.POLLIN if state == psycopg2.extensions.POLL_READ else select.POLLOUT
        poller.register(conn.fileno(), events)
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise DeadlineExceeded(f"the database did not answer within {seconds:g} s")


def install_client_deadlines(engine: Engine) -> None:
    """Bound every wait for PostgreSQL on the client side: pings 2 s, statements 17 s, connects 5 s.

    The wait callback is psycopg2's, for the whole process (every connection of every engine).
    A pool pre-ping that meets its deadline fails the checkout at once, as a 503: SQLAlchemy
    would otherwise open a new connection in its place, and on a hung path wait the whole
    connect timeout again (measured: 7 s to a 503 instead of 2 s).
    """
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg2":
        return
    psycopg2.extensions.set_wait_callback(wait_with_deadline)
    ping = engine.dialect.do_ping
    path = _DeadPath()

    def do_ping(dbapi_connection: Any) -> bool:
        _deadline.seconds = PING_DEADLINE_SECONDS
        try:
            return ping(dbapi_connection)
        except DeadlineExceeded as exc:
            path.failed()
            # Already wrapped (not a DBAPI error), so the pool does not reconnect; a 503 as usual.
            raise OperationalError("pool pre-ping", None, exc) from exc
        finally:
            _deadline.seconds = None

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]  # wraps this engine's own dialect's ping

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        path.may_connect()
        try:
            connection = dialect.loaded_dbapi.connect(*cargs, **cparams)
        except DeadlineExceeded:
            path.failed()
            raise
        path.answered()
        return connection

    @event.listens_for(engine, "handle_error")
    def _statement_failed(context: Any) -> None:
        if isinstance(context.original_exception, DeadlineExceeded):
            path.failed()


class _DeadPath:
    """After a deadline fired, new connections fail at once for DEAD_PATH_SECONDS, and then one
    thread at a time tries: otherwise every step of a chat (its heartbeat, its question) opened a
    new connection and waited out the whole connect timeout, 5 s each (measured: a 503 after 10 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refuse_until = 0.0

    def may_connect(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._refuse_until:
                raise psycopg2.OperationalError("the database did not answer a moment ago")
            if self._refuse_until:  # after a failure: this thread tries, the others wait no time
                self._refuse_until = now + CONNECT_TIMEOUT_SECONDS

    def failed(self) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + DEAD_PATH_SECONDS

    def answered(self) -> None:
        with self._lock:
            self._refuse_until = 0.0


def install_sqlite_pragmas(engine: Engine) -> None:
    """WAL lets readers and one writer work at once; foreign keys make cascades real."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL syncs at checkpoints rather than on every commit: the file is never
        # corrupted (a power cut may lose the last commits), and a commit costs less (bench.query).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    serialize_sqlite_transactions(engine)


def serialize_sqlite_transactions(engine: Engine, wait_seconds: float = 30.0) -> None:
    """One SQLite transaction at a time per process (threads queue on a lock, not on the file).

    SQLite has one writer. Without this, a hundred threads that finish answers at once all wait
    in SQLite's busy handler, which sleeps up to 100 ms between tries while the lock may be free,
    and the holder, starved of the GIL by those same threads, keeps it longer: under load
    (bench.load, 100 streams) storing an answer took 1.2 s at p95 and readers waited seconds for a
    free thread. Queued on a Python lock, the next transaction starts as soon as one ends. The
    two workers still meet in the busy handler, but as two contenders, not a hundred.
    """
    lock = threading.RLock()  # re-entrant: a thread may nest a second connection's transaction
    held = threading.local()

    @event.listens_for(engine, "begin")
    def _begin(_conn: Any) -> None:
        # Bounded: a transaction that never ended (a bug) delays the next one, never blocks it.
        if lock.acquire(timeout=wait_seconds):
            held.depth = getattr(held, "depth", 0) + 1

    def _end(_conn: Any) -> None:
        if getattr(held, "depth", 0) > 0:
            held.depth -= 1
            lock.release()

    event.listen(engine, "commit", _end)
    event.listen(engine, "rollback", _end)


_MIGRATION_LOCK = threading.Lock()

# Set in gunicorn's master once it has migrated, and inherited by the workers it forks.
MIGRATED_ENV = "CHAT_DATABASE_MIGRATED"


def try_upgrade_database(app: Any, attempts: int = 3, first_wait: float = 1.0) -> bool:
    """Migrate, retrying a database that is not reachable yet; False if it never was."""
    for attempt in range(1, attempts + 1):
        try:
            upgrade_database(app)
            return True
        except OperationalError as exc:
            log.warning(
                "database unreachable for migrations (try %d/%d): %s", attempt, attempts, type(exc).__name__
            )
            if attempt < attempts:
                time.sleep(first_wait * 2 ** (attempt - 1))
    return False


class SchemaMigrator:
    """Makes sure the schema is current before a worker serves, without ever blocking start-up.

    gunicorn's master migrates before forking; when it could (MIGRATED_ENV is set) there is
    nothing to do. When the database was unreachable then, the first worker retries in the
    background every `retry_seconds` until it succeeds; meanwhile health reports the database
    down, and chats get a 503 instead of an error from a missing table.
    """

    def __init__(self, app: Any, retry_seconds: float = 5.0) -> None:
        self._app = app
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.pending = os.environ.get(MIGRATED_ENV) != "1"

    def ensure(self) -> str:
        """The start-up task: migrate now, or keep trying in the background."""
        if not self.pending:
            return "applied before the workers started"
        if try_upgrade_database(self._app, attempts=1):
            self.pending = False
            return "applied"
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._retry, name="migrations", daemon=True)
                self._thread.start()
        return f"pending: the database is unreachable; retrying every {self._retry_seconds:g} s"

    def _retry(self) -> None:
        while self.pending:
            time.sleep(self._retry_seconds)
            if try_upgrade_database(self._app, attempts=1):
                self.pending = False
                log.info("database migrations applied after the database came back")


def upgrade_database(app: Any) -> None:
    """Apply pending migrations (a no-op when up to date), then drop the connections.

    Called once by gunicorn's master before it forks workers; disposing the engine keeps
    the master's connections from being shared with (and corrupted by) the forked workers.
    """
    from flask_migrate import upgrade

    from app.extensions import db

    # Alembic keeps its migration context in module globals: two upgrades at once in one
    # process (a retrying SchemaMigrator and another app) would tear each other's down.
    with _MIGRATION_LOCK, app.app_context():
        upgrade()
        db.engine.dispose()
