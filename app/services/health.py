"""Is the service ready, and are its dependencies up? Checks are cached so probes stay cheap."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
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
            "timestamp": datetime.now(timezone.utc).isoformat(),
        }


# How long GET /api/health reuses its dependency checks: a probe every second costs one check per
# 5 s, and a change still shows within 5 s. Not a setting: no platform probes faster.
CACHE_SECONDS = 5.0


class HealthService:
    """Runs named dependency checks (each returns {"state": "up"|"down", ...}) with a TTL cache.

    A check that raises counts as down; its exception class is reported, never its text (which
    can carry connection strings).
    """

    def __init__(self, checks: dict[str, Check], startup_state: Callable[[], str], cache_seconds: float = CACHE_SECONDS) -> None:
        self._checks = checks
        self._startup_state = startup_state
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, Any]]] | None = None

    def report(self) -> HealthReport:
        """The current health; dependency checks run at most once per cache period."""
        startup = self._startup_state()
        # While starting, states change by the second: don't let a cached "down" outlive it.
        services = self._run_checks(use_cache=startup == "ready")
        services["startup"] = {"state": startup}
        if startup == "starting":
            return HealthReport("starting", 503, services)
        if startup == "failed":
            return HealthReport("unhealthy", 503, services)
        if any(s.get("state") == "down" for s in services.values()):
            return HealthReport("degraded", 503, services)
        return HealthReport("healthy", 200, services)

    def _run_checks(self, use_cache: bool) -> dict[str, dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            if use_cache and self._cached and now - self._cached[0] < self._cache_seconds:
                return dict(self._cached[1])
            results: dict[str, dict[str, Any]] = {}
            for name, check in self._checks.items():
                started = time.perf_counter()
                try:
                    result = dict(check())
                except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
                    result = {"state": "down", "error": type(exc).__name__}
                result.setdefault("state", "up")
                result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
                results[name] = result
            self._cached = (now, results) if use_cache else None
            return dict(results)


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
