"""One client, many tiny chunks (issue 22): chunked bodies of 1-byte chunks against health probes.

    .venv/bin/python -m bench.tiny_chunks [--connections 25] [--chunks 65000]

Starts the project's gunicorn (2 workers), then opens --connections connections, one a second,
each sending a chat request whose body is --chunks chunks of `1;x\\r\\na\\r\\n` as fast as the
service reads it. Meanwhile a fresh connection asks `/api/health/live` every 0.2 s (5 s timeout:
longer counts as failed). Reported: probe latency (p50/p95/max) and failures, each attack
request's answer and how long it took, and the workers' CPU over the run. Run it from a checkout
of another commit to compare (it needs only bench/_common.py and tests/support).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from bench._common import UNLIMITED, Gunicorn, emit, machine, ms, percentile
from tests.support.service import base_env

HEAD = (
    b"POST /api/chat HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


def attack(port: int, chunks: int, results: list) -> None:
    started = time.monotonic()
    answer = "no answer"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(HEAD)
            try:
                for _ in range(chunks // 1000):
                    sock.sendall(b"1;x\r\na\r\n" * 1000)
            except OSError:
                pass  # refused mid-body
            head = sock.recv(65536)
            answer = head.split(b"\r\n", 1)[0].decode(errors="replace").split(" ", 1)[1] if head else "closed"
    except OSError as exc:
        answer = type(exc).__name__
    results.append((answer, time.monotonic() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=25)
    parser.add_argument("--chunks", type=int, default=65_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        env = base_env(instance, WEB_CONCURRENCY="2", **UNLIMITED)
        with Gunicorn(instance, env=env) as service:
            service.wait_healthy()
            workers = service.worker_pids()
            cpu_before = service.cpu_times()
            attacks: list = []
            threads = []
            probes: list[float] = []
            failed = 0
            end = time.monotonic() + args.connections + 15
            next_attack = time.monotonic()
            while time.monotonic() < end:
                if len(threads) < args.connections and time.monotonic() >= next_attack:
                    thread = threading.Thread(
                        target=attack, args=(service.port, args.chunks, attacks), daemon=True
                    )
                    thread.start()
                    threads.append(thread)
                    next_attack += 1.0
                started = time.monotonic()
                try:
                    requests.get(f"{service.url}/api/health/live", timeout=5)
                    probes.append(time.monotonic() - started)
                except requests.RequestException:
                    failed += 1
                time.sleep(0.2)
            for thread in threads:
                thread.join(timeout=60)
            cpu = sum(service.cpu_times()) - sum(cpu_before)
            same_workers = service.worker_pids() == workers
    answers = Counter(answer for answer, _ in attacks)
    seconds = [s for _, s in attacks]
    rows = [
        [
            "health probes",
            len(probes) + failed,
            failed,
            ms(percentile(probes, 50)),
            ms(percentile(probes, 95)),
            ms(max(probes, default=None)),
        ],
        [
            "attack requests",
            len(attacks),
            sum(n for a, n in answers.items() if not a[:1].isdigit()),
            ms(percentile(seconds, 50)),
            ms(percentile(seconds, 95)),
            ms(max(seconds, default=None)),
        ],
    ]
    result = {
        "answers": dict(answers),
        "workers_cpu_s": round(cpu, 1),
        "cpu_s_per_attack": round(cpu / max(1, len(attacks)), 2),
        "same_workers": same_workers,
        "machine": machine(),
    }
    emit(
        f"{args.connections} connections of {args.chunks} one-byte chunks",
        ["probe", "sent", "failed", "p50 ms", "p95 ms", "max ms"],
        rows,
        result,
    )


if __name__ == "__main__":
    main()
