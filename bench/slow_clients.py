"""Slow clients: N connections that trickle their request, while another client probes the service.

    python -m bench.slow_clients --connections 1000 --seconds 60 --kind headers,body \
        [--workers-classes buffered,gthread] [--threads 128] [--workers 2]

For each worker class and kind, starts the project's gunicorn (gunicorn.conf.py; `gthread` and
`gevent` override its worker class from the command line), opens --connections connections from
a separate process over about 2 s, each sending a request one byte a second and reconnecting at
once when the service drops it (so N slow connections stay open for the whole run):

- headers: a request line, then one header byte a second, the headers never ending;
- body: a whole `POST /api/chat` head with `Content-Length: 60000`, then one body byte a second.

Meanwhile, from this process, a fresh connection every 0.5 s asks `/api/health/live`, and every
2 s a chat (`POST /api/chat`, SSE) is timed to its first event (`metadata`) and to `done`; a
probe that gets no answer in 5 s counts as failed. Reported: probe latencies (p50/p95/max), failed
probes, how many slow connections the service dropped and how long they lived, the workers' CPU
and their peak RSS. The offline answerer answers (no Gemini), so a chat's time is the service's own.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from app.tuning import Tuning
from bench._common import (
    UNLIMITED,
    UNLIMITED_TUNING,
    Gunicorn,
    emit,
    machine,
    ms,
    peak_rss_mb,
    percentile,
    process_cpu_seconds,
)
from tests.tuning import tuning_env

PROBE_TIMEOUT = 5.0
WORKER_CLASSES = {
    "buffered": [],  # gunicorn.conf.py's worker class
    "gthread": ["--worker-class", "gthread"],
    "gevent": ["--worker-class", "gevent"],
}


def slow_clients(port: int, count: int, seconds: float, kind: str, results: Any) -> None:
    """Run in a child process: `count` connections trickling a request until `seconds` pass."""
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (max(4096, count * 2 + 64), resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )
    asyncio.run(_slow_clients(port, count, seconds, kind, results))


async def _slow_clients(port: int, count: int, seconds: float, kind: str, results: Any) -> None:
    end = time.monotonic() + seconds
    lifetimes: list[float] = []
    failed_connects = 0
    if kind == "headers":
        head = b"GET /api/health/live HTTP/1.1\r\nHost: bench\r\n"
    else:
        head = (
            b"POST /api/chat HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n"
        )

    async def one(delay: float) -> None:
        nonlocal failed_connects
        await asyncio.sleep(delay)
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                failed_connects += 1
                await asyncio.sleep(1)
                continue
            dropped = False
            try:
                writer.write(head + (b"X-Slow: " if kind == "headers" else b"{"))
                await writer.drain()
                while time.monotonic() < end:
                    # A byte a second; a read that completes means the service answered or closed.
                    try:
                        data = await asyncio.wait_for(reader.read(65536), timeout=1.0)
                    except TimeoutError:
                        writer.write(b"a")
                        await writer.drain()
                        continue
                    if not data:
                        dropped = True
                        break
                    # An error response (408): read on until the close.
            except OSError:
                dropped = True
            finally:
                writer.close()
            if dropped:
                lifetimes.append(time.monotonic() - started)

    await asyncio.gather(*(one(2.0 * i / count) for i in range(count)))
    results.put({"dropped": len(lifetimes), "lifetimes": lifetimes, "failed_connects": failed_connects})


def probe(url: str, seconds: float) -> dict[str, list]:
    """Health every 0.5 s and a chat every 2 s, each on a new connection, until `seconds` pass."""
    health: list[float | None] = []
    first_event: list[float | None] = []
    done: list[float | None] = []
    end = time.monotonic() + seconds

    def chats() -> None:
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                with requests.post(
                    f"{url}/api/chat",
                    json={"message": "How do I deploy to Hugging Face Spaces?"},
                    stream=True,
                    timeout=PROBE_TIMEOUT,
                ) as response:
                    first = None
                    for line in response.iter_lines():
                        if line.startswith(b"data: ") and first is None:
                            first = time.perf_counter() - started
                            first_event.append(first)
                    done.append(time.perf_counter() - started if response.status_code == 200 else None)
            except requests.RequestException:
                first_event.append(None)
                done.append(None)
            time.sleep(max(0.0, 2.0 - (time.perf_counter() - started)))

    chat_thread = threading.Thread(target=chats)
    chat_thread.start()
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            ok = requests.get(f"{url}/api/health/live", timeout=PROBE_TIMEOUT).status_code == 200
            health.append(time.perf_counter() - started if ok else None)
        except requests.RequestException:
            health.append(None)
        time.sleep(max(0.0, 0.5 - (time.perf_counter() - started)))
    chat_thread.join()
    return {"health": health, "first_event": first_event, "done": done}


def summary(values: list[float | None]) -> dict[str, Any]:
    ok = [v for v in values if v is not None]
    return {
        "n": len(values),
        "failed": len(values) - len(ok),
        "p50_ms": ms(percentile(ok, 50)),
        "p95_ms": ms(percentile(ok, 95)),
        "max_ms": ms(max(ok) if ok else None),
    }


def run(worker_class: str, kind: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    env = {
        **UNLIMITED,
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_CMD_ARGS": f"--threads {args.threads}",
        "LOG_LEVEL": "WARNING",
        **tuning_env(Tuning(**UNLIMITED_TUNING, answer_cache_entries=0)),
    }
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with Gunicorn(
        root / f"{worker_class}-{kind}",
        app="tests.tuned_wsgi:app",
        extra_args=WORKER_CLASSES[worker_class],
        **env,
    ) as service:
        service.wait_healthy()
        workers = service.worker_pids()
        cpu_before = sum(process_cpu_seconds(pid) for pid in workers)
        results: Any = multiprocessing.Queue()
        clients = multiprocessing.Process(
            target=slow_clients, args=(service.port, args.connections, args.seconds, kind, results)
        )
        clients.start()
        time.sleep(3)  # all slow connections open
        probes = probe(service.url, args.seconds - 3)
        slow = results.get(timeout=args.seconds + 60)
        clients.join()
        cpu = sum(process_cpu_seconds(pid) for pid in workers) - cpu_before
        rss = [peak_rss_mb(pid) for pid in workers]
    lifetimes = slow["lifetimes"]
    return {
        "worker": worker_class,
        "kind": kind,
        "connections": args.connections,
        "seconds": args.seconds,
        "health": summary(probes["health"]),
        "chat_first_event": summary(probes["first_event"]),
        "chat_done": summary(probes["done"]),
        "slow_dropped": slow["dropped"],
        "slow_lifetime_p50_s": round(percentile(lifetimes, 50) or 0, 1),
        "slow_failed_connects": slow["failed_connects"],
        "workers_cpu_s": round(cpu, 1),
        "peak_rss_mb_per_worker": [round(r) for r in rss if r is not None],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--kind", default="headers,body")
    parser.add_argument("--workers-classes", default="buffered,gthread")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=128)
    parser.add_argument(
        "--pythonpath",
        default=os.environ.get("BENCH_PYTHONPATH", ""),
        help="extra import path for the service (e.g. where gevent is installed)",
    )
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp:
        for kind in args.kind.split(","):
            for worker_class in args.workers_classes.split(","):
                result = run(worker_class, kind, args, Path(tmp))
                results.append(result)
                h, f, d = result["health"], result["chat_first_event"], result["chat_done"]
                rows.append(
                    [
                        worker_class,
                        kind,
                        args.connections,
                        h["p50_ms"],
                        h["p95_ms"],
                        h["max_ms"],
                        f"{h['failed']}/{h['n']}",
                        f["p50_ms"],
                        f["max_ms"],
                        d["max_ms"],
                        f"{d['failed']}/{d['n']}",
                        result["slow_dropped"],
                        result["slow_lifetime_p50_s"],
                        result["workers_cpu_s"],
                        " / ".join(str(r) for r in result["peak_rss_mb_per_worker"]),
                    ]
                )
                print(rows[-1], file=sys.stderr, flush=True)
    emit(
        f"Slow clients ({args.workers} workers × {args.threads} threads, {args.seconds:.0f} s; load avg "
        f"{os.getloadavg()[0]:.1f})",
        [
            "worker",
            "slow kind",
            "slow conns",
            "health p50 ms",
            "p95",
            "max",
            "health failed",
            "chat 1st event p50 ms",
            "max",
            "chat done max ms",
            "chat failed",
            "slow dropped",
            "slow lifetime p50 s",
            "workers CPU s",
            "peak RSS / worker MB",
        ],
        rows,
        {"bench": "slow_clients", "machine": machine(), "runs": results},
    )


if __name__ == "__main__":
    main()
