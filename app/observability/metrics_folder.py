"""Where gunicorn's workers keep their Prometheus samples: in memory, never on the data disk.

prometheus_client's multiprocess mode writes each worker's samples through mmap into sparse
files. A store into an mmapped page that the filesystem cannot back (a full disk) is not an
error the code can catch: the kernel sends SIGBUS and the worker dies, and so does every worker
started after it. With the files under INSTANCE_PATH, a full data disk was a total outage,
liveness included (issue 22). RAM (/dev/shm) cannot be filled by the database or the index, and
the files are a few hundred kB.

This module imports nothing of prometheus_client: gunicorn.conf.py must choose the folder
before anything imports it (it reads PROMETHEUS_MULTIPROC_DIR once, at import).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

MEMORY_FOLDER = Path("/dev/shm")
_PREFIX = "docusaurus-chat-metrics-"


def metrics_folder(instance_path: Path, memory: Path = MEMORY_FOLDER) -> Path:
    """The multiprocess folder for the service whose data lives in `instance_path`.

    One per instance folder, so that two services on one machine (tests, a staging copy) never
    add up each other's samples; under INSTANCE_PATH only where there is no writable RAM disk.
    """
    if memory.is_dir() and os.access(memory, os.W_OK | os.X_OK):
        digest = hashlib.sha256(str(instance_path.resolve()).encode()).hexdigest()[:16]
        return memory / f"{_PREFIX}{digest}"
    return instance_path / "prometheus"


def reset(folder: Path) -> None:
    """An empty folder: files of a previous run would count old workers (whose pids may return)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def remove(folder: Path) -> None:
    """Gone with the service: RAM is not left holding the samples of a stopped one."""
    if folder.name.startswith(_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
