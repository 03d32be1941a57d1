"""Load: N concurrent widget-shaped chats against the project's gunicorn and a paced fake Gemini.

    python -m bench.load --streams 50,100,200 [--rounds 2] [--threads 128] [--workers 2]
    python -m bench.load --streams 100 --rounds 1 --ramp 0 --variants current,sdk-stream --repeat 2

Starts the fake Gemini API as its own process (first token after --first-token-delay, then
--tokens-per-second, --chunk-words words per SSE event, a --answer-words answer), then the
project's gunicorn (gunicorn.conf.py) with GEMINI_API_KEY/GEMINI_BASE_URL pointing at it (so
ingestion embeds docs/ and every question is embedded, then answered, by the fake), rate limits
relaxed and the answer cache off (every chat goes to Gemini). For each N, N clients each send
--rounds chats back to back, POSTing JSON like the widget and reading the SSE stream the way the
widget does (split on \\n, keep `data: ` lines). Measured per chat, from the POST:

- metadata: the `metadata` event arrived; first token: the first `token` event; total: `done`.
- errors: anything but 200 → metadata → token… → done without an `error` event.

Side by side at the same N, the same client streams straight from the fake: its own time to the
first event is the floor, and `overhead` = the service's first-token time − the fake's (same
percentile). Also: peak RSS per worker (VmHWM), the most DB connections one worker had checked
out (`db_pool_checked_out_peak` from /metrics), the database writes that save answers in progress
(`chat_checkpoints_total`: transactions, `chat_checkpoint_rows_total`: rows, per second of the
level), and the load generator's own CPU (this process; it shares the 2 cores with the service
and the fake). Prints a table, then one JSON line.

CPU per answer: user + system CPU time of gunicorn's master and workers (from /proc, reaped
workers included) from just before the level's chats start to just after the last one ends,
divided by the chats. Unlike latency it hardly depends on what else runs on the machine, so
it is the number to compare. `--variants` runs the service with one lever changed
(bench/variants.py), each on a fresh gunicorn in the same run against the same fake;
`--repeat` interleaves them (A B A B) so drift in the machine's load hits each alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.tuning import Tuning
from bench._common import (
    FAKE_KEY,
    UNLIMITED,
    UNLIMITED_TUNING,
    Gunicorn,
    cpu_seconds,
    emit,
    fake_gemini,
    machine,
    ms,
    peak_rss_mb,
    percentile,
    process_cpu_seconds,
    rss_mb,
)
from tests.tuning import tuning_env

NO_ANSWER_CACHE = {"answer_cache_entries": 0}  # every chat answered anew, unless --answer-cache
QUESTIONS = [
    "How do I deploy to Hugging Face Spaces?",
    "How do I configure CORS for the widget?",
    "What does the health endpoint report?",
    "How do I run the tests on PostgreSQL?",
    "Which environment variables configure Gemini?",
    "How does the relevance floor work?",
    "How do I index my own Docusaurus book?",
    "What happens when the reader disconnects mid-answer?",
    "How are conversations stored?",
    "How do I use Qdrant Cloud instead of the embedded index?",
]

WORDS = (
    "The book explains this in its configuration chapter where each setting is listed with its default "
    "and what it changes for the service and the widget [1]."
).split()


@dataclass
class Chat:
    """One chat's timings in seconds from the POST (None: never happened)."""

    headers: float | None = None
    metadata: float | None = None
    first_token: float | None = None
    total: float | None = None
    error: str | None = None
    events: int = 0


@dataclass
class Level:
    """Results at one concurrency."""

    streams: int
    chats: list[Chat] = field(default_factory=list)
    fake_first: list[float] = field(default_factory=list)
    wall: float = 0.0
    generator_cpu: float = 0.0
    rss_mb: list[float | None] = field(default_factory=list)  # peak since the worker started (VmHWM)
    rss_during_mb: list[float] = field(default_factory=list)  # highest VmRSS sampled during the level
    rss_before_mb: list[float] = field(
        default_factory=list
    )  # VmRSS as the level starts (threads of the warm-up live)
    pool_peak: float | None = None
    pool_after: float | None = None  # connections still checked out a second after the level
    service_cpu: float = 0.0  # cores used by the gunicorn workers during the level
    service_cpu_seconds: float = 0.0  # master + workers, over the service's chats only
    service_system_seconds: float = 0.0  # the part of it spent in the kernel
    fake_cpu: float = 0.0
    loop_lag_max: float = 0.0  # the generator's own event-loop delay: its timestamps are this late at worst
    loadavg: float = 0.0  # the machine's 1-minute load after the level (other processes included)
    config: str = ""
    checkpoint_transactions: float = 0.0  # saving the text of answers in progress, during the level
    checkpoint_rows: float = 0.0


async def widget_chat(client: httpx.AsyncClient, url: str, question: str) -> Chat:
    """POST like the widget; parse the stream like the widget."""
    chat = Chat()
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST",
            f"{url}/api/chat",
            json={"message": question},
            headers={"Origin": "http://localhost:3000", "Accept": "text/event-stream"},
        ) as response:
            chat.headers = time.perf_counter() - started
            if response.status_code != 200:
                chat.error = f"http_{response.status_code}"
                await response.aread()
                return chat
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                lines = buffer.split("\n")
                buffer = lines.pop()
                for line in lines:
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    chat.events += 1
                    now = time.perf_counter() - started
                    kind = event.get("type")
                    if kind == "metadata" and chat.metadata is None:
                        chat.metadata = now
                    elif kind == "token" and chat.first_token is None:
                        chat.first_token = now
                    elif kind == "error":
                        chat.error = f"event_{event.get('code')}"
                    elif kind == "done":
                        chat.total = now
        if chat.total is None and chat.error is None:
            chat.error = "no_done"
    except httpx.HTTPError as exc:
        chat.error = type(exc).__name__
    return chat


async def fake_stream(client: httpx.AsyncClient, base_url: str) -> float | None:
    """Time to the first SSE event of a streamGenerateContent call straight to the fake."""
    started = time.perf_counter()
    body = {"contents": [{"role": "user", "parts": [{"text": "How do I deploy?"}]}]}
    first = None
    async with client.stream(
        "POST",
        f"{base_url}/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse",
        json=body,
        headers={"x-goog-api-key": FAKE_KEY},
    ) as response:
        async for chunk in response.aiter_text():
            if first is None and "data: " in chunk:
                first = time.perf_counter() - started
    return first


async def run_level(
    url: str,
    fake_url: str,
    streams: int,
    rounds: int,
    ramp: float,
    service_cpu: Any = lambda: (0.0, 0.0),
    worker_pids: Sequence[int] = (),
) -> Level:
    level = Level(streams)
    limits = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=streams + 8)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        # The floor: the fake alone, same client, same concurrency, same arrivals.
        async def direct(n: int) -> float | None:
            await asyncio.sleep(ramp * n / streams)
            return await fake_stream(client, fake_url)

        level.fake_first = [t for t in await asyncio.gather(*(direct(n) for n in range(streams))) if t]
        await asyncio.sleep(0.5)

        async def reader(n: int) -> list[Chat]:
            await asyncio.sleep(ramp * n / streams)  # arrivals spread over the ramp, then back to back
            return [
                await widget_chat(client, url, QUESTIONS[(n + r) % len(QUESTIONS)]) for r in range(rounds)
            ]

        done = asyncio.Event()

        level.rss_during_mb = [0.0] * len(worker_pids)
        level.rss_before_mb = [rss_mb(pid) or 0.0 for pid in worker_pids]

        async def lag_monitor() -> None:
            # Also samples the workers' resident memory: VmHWM alone would report the peak of
            # start-up (the worker that built the index), not the memory the streams hold.
            while not done.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.05)
                level.loop_lag_max = max(level.loop_lag_max, time.perf_counter() - before - 0.05)
                for i, pid in enumerate(worker_pids):
                    level.rss_during_mb[i] = max(level.rss_during_mb[i], rss_mb(pid) or 0.0)

        monitor = asyncio.create_task(lag_monitor())
        cpu_before, wall_before, service_before = cpu_seconds(), time.perf_counter(), service_cpu()
        results = await asyncio.gather(*(reader(n) for n in range(streams)))
        level.wall = time.perf_counter() - wall_before
        service_after = service_cpu()
        level.service_cpu_seconds = sum(service_after) - sum(service_before)
        level.service_system_seconds = service_after[1] - service_before[1]
        done.set()
        await monitor
        level.generator_cpu = (cpu_seconds() - cpu_before) / level.wall
    level.chats = [chat for chats in results for chat in chats]
    return level


def start_profiler(path: Path, pid: int, variant: str, streams: int) -> subprocess.Popen:
    """py-spy sampling one worker until SIGINT: only threads holding the GIL (its CPU, not its waits)."""
    out = f"{path}.{variant}.{streams}.txt"
    command = [
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "1000",
        "--gil",
        "--output",
        out,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def checkpoint_counts(service: Gunicorn) -> tuple[float, float]:
    """Checkpoint transactions and rows so far, all workers (from /metrics)."""
    metrics = service.metrics()
    return metrics.get(("chat_checkpoints_total", ()), 0.0), metrics.get(
        ("chat_checkpoint_rows_total", ()), 0.0
    )


def summarise(level: Level) -> dict[str, Any]:
    ok = [c for c in level.chats if c.error is None]
    metadata = [c.metadata for c in ok if c.metadata is not None]
    headers = [c.headers for c in ok if c.headers is not None]
    first = [c.first_token for c in ok if c.first_token is not None]
    total = [c.total for c in ok if c.total is not None]
    errors: dict[str, int] = {}
    for chat in level.chats:
        if chat.error:
            errors[chat.error] = errors.get(chat.error, 0) + 1
    out: dict[str, Any] = {
        "config": level.config,
        "streams": level.streams,
        "chats": len(level.chats),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "wall_s": round(level.wall, 2),
        "generator_cpu_pct": round(level.generator_cpu * 100),
        "peak_rss_mb_per_worker": [round(r, 1) if r else None for r in level.rss_mb],
        "rss_during_level_mb_per_worker": [round(r, 1) for r in level.rss_during_mb],
        "rss_before_level_mb_per_worker": [round(r, 1) for r in level.rss_before_mb],
        "db_pool_checked_out_peak": level.pool_peak,
        "db_pool_checked_out_after": level.pool_after,
        "generator_loop_lag_max_ms": ms(level.loop_lag_max),
        "loadavg_1m": round(level.loadavg, 2),
        "service_cpu_pct": round(level.service_cpu * 100),
        "fake_cpu_pct": round(level.fake_cpu * 100),
        "service_cpu_ms_per_answer": round(level.service_cpu_seconds / max(1, len(level.chats)) * 1000, 1),
        "service_system_cpu_ms_per_answer": round(
            level.service_system_seconds / max(1, len(level.chats)) * 1000, 1
        ),
        "checkpoint_transactions": level.checkpoint_transactions,
        "checkpoint_rows": level.checkpoint_rows,
        "checkpoint_tx_per_s": round(level.checkpoint_transactions / level.wall, 2) if level.wall else None,
        "checkpoint_rows_per_s": round(level.checkpoint_rows / level.wall, 1) if level.wall else None,
    }
    for name, values in (
        ("headers", headers),
        ("metadata", metadata),
        ("first_token", first),
        ("total", total),
        ("fake_first", level.fake_first),
    ):
        for p in (50, 95, 99):
            out[f"{name}_p{p}_ms"] = ms(percentile(values, p))
    for p in (50, 95, 99):
        a, b = out[f"first_token_p{p}_ms"], out[f"fake_first_p{p}_ms"]
        out[f"overhead_p{p}_ms"] = round(a - b, 1) if a is not None and b is not None else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="50,100,200", help="comma-separated concurrency levels")
    parser.add_argument("--rounds", type=int, default=3, help="chats per client at each level")
    parser.add_argument(
        "--ramp",
        type=float,
        default=2.5,
        help="seconds over which the N clients start (about one answer long, so N streams are "
        "live at once in steady state); 0 = all at the same instant (a burst)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)"
    )
    parser.add_argument(
        "--threads",
        default=None,
        help="gunicorn --threads, or several comma-separated (each gets a fresh service, same run)",
    )
    parser.add_argument(
        "--worker-class",
        default=None,
        help="gunicorn worker class instead of gunicorn.conf.py's (e.g. gthread, for a side-by-side run)",
    )
    parser.add_argument("--first-token-delay", type=float, default=0.3)
    parser.add_argument("--tokens-per-second", type=float, default=50)
    parser.add_argument(
        "--chunk-words", type=int, default=5, help="words per fake SSE event (Gemini sends several)"
    )
    parser.add_argument("--answer-words", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument(
        "--answer-cache",
        action="store_true",
        help="leave the answer cache on: the 10 questions repeat, so most chats are replayed",
    )
    parser.add_argument(
        "--keep-log", type=Path, default=None, help="copy the service's log (JSON lines) here"
    )
    parser.add_argument("--label", default="", help="a name for this configuration in the output")
    parser.add_argument(
        "--variants",
        default="current",
        help="comma-separated service variants from bench/variants.py (each a fresh service, same run)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy (pip install py-spy) samples the first worker during each level: "
        "collapsed stacks in PATH.<variant>.<streams>.txt (summarise with bench.profile_summary)",
    )
    parser.add_argument(
        "--warm-up",
        type=int,
        default=None,
        help="chats sent at once to each new service before measuring (default: the largest level)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the variants × threads list this many times, interleaved"
    )
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.streams.split(",")]

    answer = " ".join(WORDS[i % len(WORDS)] for i in range(args.answer_words))
    env = {
        **UNLIMITED,
        "GEMINI_API_KEY": FAKE_KEY,
        # The service's tuning (bench.variants builds the app with TEST_TUNING, tests/tuning.py).
        **tuning_env(Tuning(**UNLIMITED_TUNING, **({} if args.answer_cache else NO_ANSWER_CACHE))),
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    thread_configs = args.threads.split(",") if args.threads else [None]
    from bench.variants import ENV as VARIANT_ENV

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANT_ENV]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANT_ENV)}")
    configs = [
        (threads, variant) for _ in range(args.repeat) for threads in thread_configs for variant in variants
    ]

    fake = fake_gemini(
        "--first-token-delay",
        str(args.first_token_delay),
        "--tokens-per-second",
        str(args.tokens_per_second),
        "--chunk-words",
        str(args.chunk_words),
        "--reply-text",
        answer,
    )
    results = []
    with fake:
        env["GEMINI_BASE_URL"] = fake.base_url
        fake_pid = fake._process.pid
        for threads, variant in configs:
            config_env = dict(env, **({"GUNICORN_CMD_ARGS": f"--threads {threads}"} if threads else {}))
            config_env.update(VARIANT_ENV[variant], BENCH_VARIANTS=variant)
            with (
                tempfile.TemporaryDirectory(prefix="bench-load-") as tmp,
                Gunicorn(
                    Path(tmp) / "instance",
                    app="bench.variants:app_from_env()",
                    extra_args=["--worker-class", args.worker_class] if args.worker_class else (),
                    **config_env,
                ) as service,
            ):
                label = f"{variant}, {args.workers or 'default'} workers × {threads or 'default'} threads"
                service.wait_healthy()
                # Warm-up: connections, imports, caches, and the threads (gthread starts them on demand,
                # each with its own per-thread state), so a level measures the steady state.
                asyncio.run(run_level(service.url, fake.base_url, args.warm_up or max(levels), 1, 0))
                for streams in levels:
                    workers = service.worker_pids()
                    before = [process_cpu_seconds(pid) for pid in workers], process_cpu_seconds(fake_pid)
                    saves_before = checkpoint_counts(service)
                    profiler = (
                        start_profiler(args.profile, workers[0], variant, streams) if args.profile else None
                    )
                    level = asyncio.run(
                        run_level(
                            service.url,
                            fake.base_url,
                            streams,
                            args.rounds,
                            args.ramp,
                            service.cpu_times,
                            workers,
                        )
                    )
                    if profiler is not None:
                        profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                        profiler.wait(timeout=60)
                    # CPU over the whole level (the fake-alone floor included: a rough share).
                    level.service_cpu = (
                        sum(process_cpu_seconds(pid) for pid in workers) - sum(before[0])
                    ) / level.wall
                    level.fake_cpu = (process_cpu_seconds(fake_pid) - before[1]) / level.wall
                    level.rss_mb = [peak_rss_mb(pid) for pid in workers]
                    saves_after = checkpoint_counts(service)
                    level.checkpoint_transactions = saves_after[0] - saves_before[0]
                    level.checkpoint_rows = saves_after[1] - saves_before[1]
                    level.pool_peak = service.metrics().get(("db_pool_checked_out_peak", ()))
                    level.loadavg = os.getloadavg()[0]
                    level.config = label
                    results.append(summarise(level))
                    time.sleep(1)
                    # The pool must give every connection back once the readers are done.
                    level.pool_after = service.metrics().get(("db_pool_checked_out", ()))
                    results[-1]["db_pool_checked_out_after"] = level.pool_after
                    print(
                        f"  {label}, {streams} streams: {results[-1]['errors']} errors, "
                        f"CPU {results[-1]['service_cpu_ms_per_answer']} ms/answer "
                        f"({results[-1]['service_system_cpu_ms_per_answer']} system), "
                        f"first token p95 {results[-1]['first_token_p95_ms']} ms, "
                        f"connections in use after: {level.pool_after}",
                        file=sys.stderr,
                        flush=True,
                    )
                if args.keep_log:
                    import shutil

                    shutil.copy(service.log_path, f"{args.keep_log}.{variant}.{threads or 'default'}")

    headers = [
        "config",
        "streams",
        "chats",
        "errors",
        "service CPU ms/answer (system)",
        "metadata p50/p95/p99 ms",
        "first token p50/p95/p99 ms",
        "fake alone p50/p95 ms",
        "overhead p50/p95 ms",
        "total p50/p95 ms",
        "RSS/worker MB: max during level (peak since start)",
        "DB conns peak / after",
        "checkpoints: tx/s / rows/s",
        "CPU: service / fake / generator",
        "generator lag max ms",
        "load avg",
    ]

    def trio(r: dict, name: str, ps=(50, 95, 99)) -> str:
        return " / ".join("–" if r[f"{name}_p{p}_ms"] is None else f"{r[f'{name}_p{p}_ms']:.0f}" for p in ps)

    rows = [
        [
            r["config"],
            r["streams"],
            r["chats"],
            r["errors"],
            f"{r['service_cpu_ms_per_answer']} ({r['service_system_cpu_ms_per_answer']})",
            trio(r, "metadata"),
            trio(r, "first_token"),
            trio(r, "fake_first", (50, 95)),
            trio(r, "overhead", (50, 95)),
            trio(r, "total", (50, 95)),
            " / ".join(
                f"{d:.0f} ({m:.0f})"
                for d, m in zip(r["rss_during_level_mb_per_worker"], r["peak_rss_mb_per_worker"], strict=True)
                if m
            ),
            f"{r['db_pool_checked_out_peak']} / {r['db_pool_checked_out_after']}",
            f"{r['checkpoint_tx_per_s']} / {r['checkpoint_rows_per_s']}",
            f"{r['service_cpu_pct']}% / {r['fake_cpu_pct']}% / {r['generator_cpu_pct']}%",
            r["generator_loop_lag_max_ms"],
            r["loadavg_1m"],
        ]
        for r in results
    ]
    config = {
        "workers": args.workers or "conf default",
        "threads": args.threads or "conf default",
        "database": "postgresql" if args.database_url else "sqlite",
        "fake": {
            "first_token_delay_s": args.first_token_delay,
            "tokens_per_second": args.tokens_per_second,
            "chunk_words": args.chunk_words,
            "answer_words": args.answer_words,
        },
        "rounds": args.rounds,
        "ramp_s": args.ramp,
        "answer_cache": args.answer_cache,
        "variants": variants,
        "repeat": args.repeat,
    }
    title = (
        f"Load {args.label} — {config['database']}, answer cache {'on' if args.answer_cache else 'off'}, "
        f"fake Gemini: first token {args.first_token_delay * 1000:.0f} ms, {args.tokens_per_second:.0f} "
        "tokens/s, "
        f"{args.answer_words}-word answers; {args.rounds} chats per client, clients started over "
        f"{args.ramp:g} s"
    )
    emit(
        title,
        headers,
        rows,
        {"bench": "load", "label": args.label, "machine": machine(), "config": config, "levels": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
