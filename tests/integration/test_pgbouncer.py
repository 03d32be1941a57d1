"""The statement timeout through a real PgBouncer in transaction mode (as Neon's pooled URLs are).

In transaction mode each transaction may run on another server connection, so a timeout set once
per client connection lands on one server connection only and leaks to other clients of the pool.
The service sets it per transaction instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.database import engine_options, install_postgres_session_settings
from tests.conftest import TEST_DATABASE_URL

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)
TIMEOUT_MS = 300

pytestmark = [
    pytest.mark.skipif(
        PGBOUNCER is None, reason="pgbouncer is not installed (Debian: apt-get install pgbouncer)"
    ),
    pytest.mark.skipif(
        not TEST_DATABASE_URL, reason="PgBouncer pools a real PostgreSQL: set TEST_DATABASE_URL"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pooler():
    """PgBouncer in transaction mode, two server connections, in front of the test database."""
    upstream = make_url(TEST_DATABASE_URL)
    port = _free_port()
    folder = Path(f"/tmp/pgbouncer-{os.getpid()}-{port}")
    folder.mkdir()
    (folder / "users.txt").write_text(f'"{upstream.username}" ""\n')
    host, upstream_port = upstream.host or "127.0.0.1", upstream.port or 5432
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{upstream.database} = host={host} port={upstream_port} dbname={upstream.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
admin_users = {upstream.username}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(folder, "postgres")
        for path in folder.iterdir():
            shutil.chown(path, "postgres")
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = process.stderr.read().decode() if process.poll() is not None else ""
                    raise AssertionError(f"pgbouncer did not start: {said}") from None
                time.sleep(0.05)
        yield upstream.set(host="127.0.0.1", port=port)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def service_engine(url, settings_factory):
    """An engine as the service builds it (pool, options, per-transaction settings)."""
    settings = settings_factory(database_url=url.render_as_string(hide_password=False))
    engine = create_engine(settings.sqlalchemy_url, **{**engine_options(settings), "pool_size": 8})
    install_postgres_session_settings(engine, TIMEOUT_MS)
    return engine


def other_client_timeouts(url, times: int = 10) -> set[str]:
    """`SHOW statement_timeout` as another client of the pool sees it, over several transactions."""
    seen = set()
    conn = psycopg2.connect(host=url.host, port=url.port, dbname=url.database, user=url.username)
    try:
        for _ in range(times):
            with conn.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                seen.add(cursor.fetchone()[0])
            conn.commit()
    finally:
        conn.close()
    return seen


def reconnect_servers(url) -> None:
    """PgBouncer's admin RECONNECT: fresh server connections, as after a pooler restart or failover."""
    admin = psycopg2.connect(host=url.host, port=url.port, dbname="pgbouncer", user=url.username)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("RECONNECT")
    finally:
        admin.close()


def test_the_timeout_holds_in_every_transaction_and_never_leaks_to_other_clients(pooler, make_settings):
    engine = service_engine(pooler, make_settings)
    try:
        for _ in range(4):
            with engine.begin() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == f"{TIMEOUT_MS}ms"
        assert other_client_timeouts(pooler) == {"0"}
    finally:
        engine.dispose()


def test_slow_queries_through_the_pooler_are_all_cancelled_under_concurrency(pooler, make_settings):
    engine = service_engine(pooler, make_settings)
    try:
        with engine.begin() as conn:  # the pool is warm: its client connections are already set up
            conn.execute(text("SELECT 1"))
        reconnect_servers(pooler)

        outcomes: list[str] = []

        def slow() -> None:
            try:
                with engine.begin() as conn:
                    conn.execute(text("SELECT pg_sleep(2)"))
                outcomes.append("ran to the end")
            except OperationalError as exc:
                outcomes.append("cancelled" if "statement timeout" in str(exc) else f"other: {exc}")

        started = time.monotonic()
        threads = [threading.Thread(target=slow) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.monotonic() - started
        assert outcomes == ["cancelled"] * 8
        # Two server connections, 8 queries of 0.3 s each: about 1.2 s, not 8 s of sleeping.
        assert elapsed < 6
        assert other_client_timeouts(pooler) == {"0"}
    finally:
        engine.dispose()
