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

from filelock import FileLock

log = logging.getLogger(__name__)

Task = tuple[str, Callable[[], object]]


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
        except Exception as exc:  # noqa: BLE001 - reported through health, never raised
            self.error = f"{type(exc).__name__}"
            self._state = "failed"
            log.exception("start-up failed")
            return
        self._state = "ready"
        log.info("start-up complete: ready")
