"""Cold start: gunicorn process start → first 200 from /api/health, embedded default, index present.

    python -m bench.cold_start [--runs 5] [--workers 2]

The first start builds the index of docs/ (not timed); then each run starts the project's
gunicorn (gunicorn.conf.py: migrations in the master, then the workers, each checking the index
is up to date) on the same instance folder and polls /api/health every 20 ms, and, side by
side, on a new empty instance folder (a new container of the image, which holds no index:
start-up migrates a new database and builds the index before health says 200). Also reported:
the import time of the app (`python -X importtime -c "import wsgi"`, biggest packages) and the
wall time of `import wsgi` alone. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import ROOT, Gunicorn, base_env, emit, machine, rss_mb


def import_profile(instance: Path, top: int = 8) -> tuple[float, list[tuple[str, float]]]:
    """(seconds to `import wsgi` in a fresh interpreter, the slowest top-level packages in ms)."""
    env = base_env(instance, INDEX_ON_START="false")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import wsgi"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    packages: dict[str, float] = {}
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        # A package root (its cumulative time includes everything it imported first).
        if "." not in name and name not in ("app", "wsgi", "encodings") and not name.startswith("_"):
            packages[name] = max(packages.get(name, 0.0), int(parts[1]) / 1000)
    slowest = sorted(packages.items(), key=lambda item: -item[1])[:top]
    return wall, slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        instance = Path(tmp) / "instance"
        env = {"WEB_CONCURRENCY": str(args.workers)}
        with Gunicorn(instance, **env) as first:  # builds the index; not timed
            build_s = first.wait_healthy()
        times, empty_times, rss = [], [], []
        for run in range(args.runs):
            with Gunicorn(instance, **env) as service:
                times.append(service.wait_healthy())
                rss += [r for r in (rss_mb(pid) for pid in service.worker_pids()) if r]
            with Gunicorn(Path(tmp) / f"empty-{run}", **env) as service:
                empty_times.append(service.wait_healthy())
        import_s, slowest = import_profile(instance)

    rows = [
        [
            "gunicorn start → health 200 (index present)",
            f"{args.workers} workers",
            min(times) * 1000,
            statistics.median(times) * 1000,
            max(times) * 1000,
        ],
        [
            "gunicorn start → health 200 (empty instance: builds the index)",
            f"{args.workers} workers",
            min(empty_times) * 1000,
            statistics.median(empty_times) * 1000,
            max(empty_times) * 1000,
        ],
        ["first start (builds the index of docs/)", f"{args.workers} workers", build_s * 1000, None, None],
        ["`import wsgi` (imports + create_app)", "1 process", import_s * 1000, None, None],
        [
            "RSS per worker once healthy (MB, not ms)",
            f"{len(rss)} workers",
            min(rss),
            statistics.median(rss),
            max(rss),
        ],
    ]
    rows += [[f"  import {name}", "cumulative", cost, None, None] for name, cost in slowest]
    result = {
        "bench": "cold_start",
        "machine": machine(),
        "runs": args.runs,
        "workers": args.workers,
        "health_200_s": {
            "min": round(min(times), 3),
            "median": round(statistics.median(times), 3),
            "max": round(max(times), 3),
        },
        "health_200_empty_instance_s": {
            "min": round(min(empty_times), 3),
            "median": round(statistics.median(empty_times), 3),
            "max": round(max(empty_times), 3),
        },
        "first_start_with_index_build_s": round(build_s, 3),
        "import_wsgi_s": round(import_s, 3),
        "rss_mb_per_worker_after_start": {
            "min": round(min(rss), 1),
            "median": round(statistics.median(rss), 1),
            "max": round(max(rss), 1),
        },
        "slowest_imports_ms": {name: round(cost, 1) for name, cost in slowest},
    }
    emit(f"Cold start ({args.runs} runs)", ["what", "how", "min ms", "median ms", "max ms"], rows, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
