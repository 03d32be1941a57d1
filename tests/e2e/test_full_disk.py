"""A full instance disk, driven for real: INSTANCE_PATH on a small tmpfs that the test fills
under a running service, then frees. Nothing the service writes may kill a worker (the metrics'
mmapped files did: SIGBUS), health must say which dependency is down, chats get a clean 503,
and the service recovers by itself."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from app.tuning import Tuning
from tests.support.service import NO_HEALTH_CACHE, Service, widget_chat
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path):
    """tmp_path/instance as a 200 MB tmpfs (root only: mounting needs CAP_SYS_ADMIN)."""
    folder = tmp_path / "instance"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs as the instance folder needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk refuses: the disk is then full (0 bytes free)."""
    filler = folder / "filler"
    block = b"x" * (1 << 20)
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass
    # Top up the last partial block, byte by byte in 4 kB steps.
    with open(filler, "ab", buffering=0) as handle:
        try:
            while handle.write(b"x" * 4096):
                pass
        except OSError:
            pass
    return filler


def health(url: str) -> tuple[int, dict]:
    response = requests.get(f"{url}/api/health", timeout=5)
    return response.status_code, response.json()


def test_a_full_instance_disk_is_a_clean_503_and_heals_by_itself(tmp_path, small_disk):
    # SQLite on the small disk: the default, and what a full disk breaks (PostgreSQL would not care).
    settings = {"DATABASE_URL": f"sqlite:///{small_disk / 'chat.db'}", "RATE_LIMIT_CHAT": "1000/minute"}
    with Service(tmp_path, tuning=Tuning(**NO_HEALTH_CACHE), **settings) as service:
        service.wait_healthy()
        assert widget_chat(service.url, {"message": "How do I run the service?"})[-1]["type"] == "done"
        workers_before = _worker_pids(service.proc.pid)

        filler = fill(small_disk)
        filled_at = time.monotonic()
        status, body = wait_until(
            lambda: (lambda h: h if h[0] == 503 else None)(health(service.url)), timeout=8
        )
        assert time.monotonic() - filled_at < 5.5
        assert body["status"] == "degraded"
        assert body["services"]["disk"] == {
            "state": "down",
            "error": "ENOSPC",
            "latency_ms": body["services"]["disk"]["latency_ms"],
        }
        assert str(small_disk) not in str(body)

        # Readers get a JSON 503, liveness stays up, and probes keep being answered for a while.
        for _ in range(10):
            response = requests.post(
                f"{service.url}/api/chat", json={"message": "How do I run the service?"}, timeout=10
            )
            assert response.status_code == 503, response.text
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.json()["error"] == "database_unavailable"
            assert requests.get(f"{service.url}/api/health/live", timeout=5).status_code == 200
        for _ in range(20):
            assert health(service.url)[0] == 503
            time.sleep(0.1)
        assert "SIGBUS" not in service.log()
        assert _worker_pids(service.proc.pid) == workers_before, service.log()

        filler.unlink()
        wait_until(lambda: health(service.url)[0] == 200, timeout=10, message=service.log)
        assert widget_chat(service.url, {"message": "How do I run the service?"})[-1]["type"] == "done"
        assert _worker_pids(service.proc.pid) == workers_before


def test_metrics_files_live_in_memory_and_only_while_metrics_are_on(tmp_path):
    from app.observability.metrics_folder import MEMORY_FOLDER, metrics_folder

    if not MEMORY_FOLDER.is_dir():
        pytest.skip(f"no {MEMORY_FOLDER} on this machine: metrics stay under INSTANCE_PATH")
    with Service(tmp_path / "on") as service:
        service.wait_healthy()
        instance = Path(service.env["INSTANCE_PATH"])
        folder = metrics_folder(instance)
        assert list(folder.glob("*.db")), "the workers write their samples in RAM"
        assert not (instance / "prometheus").exists()
    assert not folder.exists(), "a stopped service leaves nothing in RAM"

    with Service(tmp_path / "off", METRICS_ENABLED="false") as service:
        service.wait_healthy()
        requests.get(f"{service.url}/api/health/live", timeout=5)
        instance = Path(service.env["INSTANCE_PATH"])
        assert not metrics_folder(instance).exists() and not (instance / "prometheus").exists()


def _worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}
