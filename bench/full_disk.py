"""A full instance disk under a running service (issue 22): what probes and readers get.

    sudo .venv/bin/python -m bench.full_disk [--seconds 20]

Mounts a 200 MB tmpfs as INSTANCE_PATH (root only), starts the project's gunicorn on it with
SQLite (the embedded default), waits for health, then fills the disk. For --seconds it probes
every 0.25 s: liveness, health and a chat (each with a 5 s timeout); then it frees the disk and
times health's return to 200. Reported per probe: how many answered and with which status, the
first health 503 after the fill, SIGBUS lines in the log, whether the workers are the ones it
started with, and recovery time.
Run it from a checkout of another commit to compare (the script only needs tests/support).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from bench._common import UNLIMITED, Gunicorn, emit, machine
from tests.support.service import base_env

CHAT = {"message": "How do I run the service?"}


def probe(method: str, url: str, **kwargs: object) -> str:
    try:
        return str(requests.request(method, url, timeout=5, **kwargs).status_code)
    except requests.RequestException:
        return "no answer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("mounting a tmpfs needs root")
    with tempfile.TemporaryDirectory() as tmp:
        disk = Path(tmp) / "instance"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(disk)], check=True)
        try:
            result = run(disk, Path(tmp) / "gunicorn.log", args.seconds)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    rows = [
        [name, sum(counts.values()), ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))]
        for name, counts in result.pop("probes").items()
    ]
    emit(
        f"A full instance disk for {args.seconds:.0f} s",
        ["probe", "sent", "answers"],
        rows,
        {**result, "machine": machine()},
    )


def run(disk: Path, log: Path, seconds: float) -> dict:
    env = base_env(disk, DATABASE_URL=f"sqlite:///{disk / 'chat.db'}", WEB_CONCURRENCY="2", **UNLIMITED)
    with Gunicorn(disk, log_path=log, env=env) as service:
        service.wait_healthy()
        workers = set(service.worker_pids())
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as handle:
            for size in (1 << 20, 4096):
                try:
                    while handle.write(b"x" * size):
                        pass
                except OSError:
                    pass
        filled = time.monotonic()
        probes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        first_degraded = None
        while time.monotonic() - filled < seconds:
            probes["GET /api/health/live"][probe("GET", f"{service.url}/api/health/live")] += 1
            status = probe("GET", f"{service.url}/api/health")
            probes["GET /api/health"][status] += 1
            if status == "503" and first_degraded is None:
                first_degraded = time.monotonic() - filled
            probes["POST /api/chat"][probe("POST", f"{service.url}/api/chat", json=CHAT)] += 1
            time.sleep(0.25)
        filler.unlink()
        freed = time.monotonic()
        recovered = None
        while time.monotonic() - freed < 30:
            if probe("GET", f"{service.url}/api/health") == "200":
                recovered = time.monotonic() - freed
                break
            time.sleep(0.1)
        text = service.log()
        return {
            "probes": probes,
            "health_503_after_s": None if first_degraded is None else round(first_degraded, 2),
            "healthy_again_after_s": None if recovered is None else round(recovered, 2),
            "sigbus_lines": text.count("SIGBUS"),
            "same_workers": set(service.worker_pids()) == workers,
            "chat_after_recovery": probe("POST", f"{service.url}/api/chat", json=CHAT),
        }


if __name__ == "__main__":
    main()
