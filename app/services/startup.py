"""Start-up work that must finish before the service is ready, done once across workers.

Several gunicorn workers start together; a file lock makes the first one do the work (bring the
embedded index up to date) while the others wait, then find nothing left to do. Health says
`starting` until it is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from filelock import FileLock
from sqlalchemy.exc import SQLAlchemyError

from app.services.errors import ServiceUnavailable

if TYPE_CHECKING:
    from app.services.index import SearchIndex
    from app.services.ingestion.pipeline import IngestSummary
    from app.services.live_turns import LiveTurns

log = logging.getLogger(__name__)

Task = tuple[str, Callable[[], object]]


class SchemaGuard(Protocol):
    """Brings the database schema up to date (`ensure`), and says whether it still is not."""

    pending: bool

    def ensure(self) -> object:
        """Migrate now or keep trying in the background; returns a note for the start-up log."""
        ...


class Startup:
    """Runs start-up tasks in order, in the background, under an inter-process lock."""

    def __init__(self, lock_path: Path, tasks: list[Task]) -> None:
        self._lock_path = lock_path
        self._tasks = tasks
        self._state = "starting"
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    @property
    def state(self) -> str:
        """starting | ready | failed."""
        return self._state

    def begin(self) -> None:
        """Run the tasks in a background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="startup", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the tasks are done (for tests and CLI use); returns the state."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._state

    def run(self) -> None:
        """Run every task now, in this thread."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self._lock_path)):
                for name, task in self._tasks:
                    log.info("start-up: %s", name)
                    result = task()
                    if result is not None:
                        log.info("start-up: %s -> %s", name, result)
        except Exception as exc:
            self.error = f"{type(exc).__name__}"
            self._state = "failed"
            log.exception("start-up failed")
            return
        self._state = "ready"
        log.info("start-up complete: ready")


# --- the tasks ---------------------------------------------------------------------------------


def mark_abandoned_answers(live_turns: LiveTurns) -> int | str:
    """Mark interrupted the answers left `streaming` by workers that are gone."""
    # Best effort: a database that is down now must not keep the service from starting;
    # health reports it, and the next start sweeps again.
    try:
        return live_turns.sweep()
    except SQLAlchemyError as exc:
        log.warning("could not sweep abandoned answers: %s", type(exc).__name__)
        return "skipped (database unavailable)"


def index_the_book(ingest: Callable[[], IngestSummary]) -> object:
    """Bring the embedded index up to date with the book, or keep serving the one it has."""
    # An index that cannot be refreshed now (Gemini unreachable for embeddings) must not keep
    # the service from serving the version it already has; health shows an empty index as down.
    try:
        return ingest().as_dict()
    except ServiceUnavailable as exc:
        log.error("could not bring the index up to date at start-up: %s", exc.code)
        return f"skipped ({exc.code}); serving the existing index"


def load_live_index(index: SearchIndex) -> str | None:
    """Serve the index version just built, not the one seen a second ago."""
    # An index that cannot be reached (Qdrant Cloud down) is health's to report, not start-up's.
    try:
        return index.refresh()
    except Exception as exc:  # noqa: BLE001 - any engine's failure: health reports it
        log.warning("the index cannot be read yet: %s", type(exc).__name__)
        return None
