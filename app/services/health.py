"""Is the service ready, and are its dependencies up? Checks are cached so probes stay cheap."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.services.conversations import ConversationStore
    from app.services.index import SearchIndex
    from app.services.providers.gemini import GeminiProvider
    from app.services.startup import SchemaGuard

Check = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class HealthReport:
    """The overall status, its HTTP code, and each dependency's state."""

    status: str  # starting | healthy | degraded | unhealthy
    http_status: int
    services: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of GET /api/health."""
        return {
            "status": self.status,
            "services": self.services,
            "timestamp": datetime.now(UTC).isoformat(),
        }


class _NamedCheck:
    """One dependency's check: at most one run at a time, in a thread of its own, and its last
    result with the time it was known."""

    def __init__(self, name: str, check: Check) -> None:
        self.name = name
        self._check = check
        self._lock = threading.Lock()
        self._run: tuple[float, threading.Event] | None = None  # (started, done) while running
        self._result: tuple[float, dict[str, Any]] | None = None  # (when known, result)

    def cached(self, max_age: float) -> dict[str, Any] | None:
        """The last result if it is at most `max_age` seconds old."""
        result = self._result
        if result is not None and time.monotonic() - result[0] < max_age:
            return result[1]
        return None

    def start(self) -> tuple[float, threading.Event]:
        """Start a run, or join the one in progress: (when it started, set when it is done)."""
        with self._lock:
            if self._run is None:
                self._run = (time.monotonic(), threading.Event())
                threading.Thread(
                    target=self._execute, args=self._run, name=f"health-{self.name}", daemon=True
                ).start()
            return self._run

    def outcome(self, started: float, done: threading.Event) -> dict[str, Any]:
        """The run's result once `done` is set; meanwhile down with a timeout (remembered too, so
        that probes within the cache period answer at once)."""
        if done.is_set():  # then _result holds this run's result (or a newer one)
            assert self._result is not None
            return self._result[1]
        timed_out = {"state": "down", "error": "timeout", "latency_ms": _ms_since(started)}
        with self._lock:
            if self._run is not None and self._run[1] is done:
                self._result = (time.monotonic(), timed_out)
        return timed_out

    def _execute(self, started: float, done: threading.Event) -> None:
        try:
            result = dict(self._check())
        except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
            result = {"state": "down", "error": type(exc).__name__}
        result.setdefault("state", "up")
        result["latency_ms"] = _ms_since(started)
        with self._lock:
            self._result = (time.monotonic(), result)
            self._run = None
        done.set()


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


class HealthService:
    """Runs named dependency checks (each returns {"state": "up"|"down", ...}), each cached and
    each with a deadline, side by side: a hung check neither delays the others nor the probe.

    A check that raises counts as down; its exception class is reported, never its text (which
    can carry connection strings). A result is reused for `cache_seconds`; a probe waits at most
    `deadline_seconds` for a check, and one still running then is reported down with `"error":
    "timeout"` and carries on in the background: probes meanwhile wait for that same run (never
    start a second one), and its result, when it comes, is the next answer.
    """

    def __init__(
        self,
        checks: dict[str, Check],
        startup_state: Callable[[], str],
        *,
        cache_seconds: float,
        deadline_seconds: float,
    ) -> None:
        self._checks = [_NamedCheck(name, check) for name, check in checks.items()]
        self._startup_state = startup_state
        self._cache_seconds = cache_seconds
        self._deadline_seconds = deadline_seconds

    def report(self) -> HealthReport:
        """The current health; each dependency check runs at most once per cache period."""
        startup = self._startup_state()
        # While starting, states change by the second: don't let a cached "down" outlive it.
        services = self._run_checks(max_age=self._cache_seconds if startup == "ready" else 0)
        services["startup"] = {"state": startup}
        if startup == "starting":
            return HealthReport("starting", 503, services)
        if startup == "failed":
            return HealthReport("unhealthy", 503, services)
        if any(s.get("state") == "down" for s in services.values()):
            return HealthReport("degraded", 503, services)
        return HealthReport("healthy", 200, services)

    def _run_checks(self, max_age: float) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        running: dict[str, tuple[_NamedCheck, float, threading.Event]] = {}
        for check in self._checks:
            cached = check.cached(max_age)
            if cached is not None:
                results[check.name] = cached
            else:
                running[check.name] = (check, *check.start())
        deadline = time.monotonic() + self._deadline_seconds
        for name, (check, started, done) in running.items():
            done.wait(max(0.0, deadline - time.monotonic()))
            results[name] = check.outcome(started, done)
        # In the checks' order, each a copy: the caller adds to it.
        return {check.name: dict(results[check.name]) for check in self._checks}


# --- the dependency checks ---------------------------------------------------------------------


def check_database(store: ConversationStore, dialect: str, schema: SchemaGuard | None) -> dict[str, Any]:
    """Up when a query goes through and no migration is pending."""
    store.ping()
    if schema is not None and schema.pending:
        return {"state": "down", "backend": dialect, "schema": "migrations pending"}
    return {"state": "up", "backend": dialect}


def check_index(index: SearchIndex, *, embedded: bool) -> dict[str, Any]:
    """Up when the index holds passages; its version and engine."""
    points = index.count()
    return {
        "state": "up" if points else "down",
        "points": points,
        "version": index.version(),
        "engine": "embedded" if embedded else "qdrant",
    }


def check_answerer(answerer_name: str, provider: GeminiProvider | None) -> dict[str, Any]:
    """The offline answerer is always up; Gemini is down while its circuit breaker is open."""
    if provider is None:
        return {"state": "up", "mode": answerer_name}
    # From the circuit breaker's memory of real calls: a probe would spend quota.
    breaker = provider.breaker
    return {
        "state": "down" if breaker.state == "open" else "up",
        "mode": "gemini",
        "model": provider.config.model,
        "circuit": breaker.state,
        "consecutive_failures": breaker.consecutive_failures,
    }


# Below this much free space the instance folder counts as full: SQLite needs room for its
# journal before a write can succeed, so a reader would meet 503s before the disk is at 0.
DISK_MIN_FREE_BYTES = 4 * 1024 * 1024
_PROBE_BYTES = b"\0" * 4096


def check_disk(folder: Path) -> dict[str, Any]:
    """Up when the instance folder (SQLite, the embedded index) can be written and has room.

    Free space alone misses a read-only mount, and a write alone misses a nearly full disk, so
    both: a 4 kB file written, synced and removed, and the free space left. Errors are named by
    errno (ENOSPC, EROFS, ...), never with the path.
    """
    probe = folder / ".health-probe"
    try:
        with open(probe, "wb") as handle:
            handle.write(_PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return {"state": "down", "error": errno.errorcode.get(exc.errno or 0, type(exc).__name__)}
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    usage = os.statvfs(folder)
    if usage.f_bavail * usage.f_frsize < DISK_MIN_FREE_BYTES:
        return {"state": "down", "error": "ENOSPC"}
    return {"state": "up"}
