"""What the benchmarks share: free ports, a gunicorn and a fake Gemini they start and stop, peak
memory of a process, percentiles, the machine, and the table + JSON-line output."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from tests.support import service
from tests.support.service import base_env  # noqa: F401  (bench scripts import it from here)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "docusaurus-docs"
EVAL_QUESTIONS = SHARED / "eval" / "docusaurus-questions.dev.jsonl"
FAKE_KEY = "AIza-bench-key-0000"

# Limits are for abusers, not for a benchmark that sends everything from 127.0.0.1: the setting,
# and the Tuning fields (app/tuning.py) for a service built with them: `Tuning(**UNLIMITED_TUNING)`,
# handed to a tuned app (bench.variants, tests/tuned_wsgi.py) by tests/tuning.py's tuning_env.
UNLIMITED = {"RATE_LIMIT_CHAT": "1000000/minute"}
UNLIMITED_TUNING: dict[str, Any] = {
    "rate_limit_default": "1000000/minute",
    "rate_limit_health": "1000000/minute",
    "max_streams_per_client": 1000,
}


def ensure_corpus() -> Path:
    """The Docusaurus docs corpus (CORPUS), fetched first by scripts/fetch_corpus.py when this
    machine lacks it (that needs network and git); raises CalledProcessError if it cannot be had."""
    if not (CORPUS / "docs").is_dir():
        fetch = [sys.executable, str(ROOT / "scripts" / "fetch_corpus.py"), "--dest", str(CORPUS)]
        subprocess.run(fetch, check=True)
    return CORPUS


class Gunicorn(service.Gunicorn):
    """The project's gunicorn (tests/support/service.py) with the measurements benchmarks take."""

    def wait_healthy(self, timeout: float = 120, poll: float = 0.02) -> float:  # type: ignore[override]  # returns the seconds it waited
        """Seconds from process start to the first 200 from /api/health."""
        super().wait_healthy(timeout, in_a_row=1, poll=poll)
        assert self.healthy_after is not None
        return self.healthy_after

    def worker_pids(self) -> list[int]:
        """The workers (children of the master)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the master and every worker, reaped ones included (the
        master's cutime/cstime count children it has waited for, so a recycled worker is not lost)."""
        times = [process_cpu_times(self.proc.pid, children=True)] + [
            process_cpu_times(p) for p in self.worker_pids()
        ]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """/metrics as {(name, sorted labels): value}."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{self.url}/metrics", headers=service.METRICS_AUTH, timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def fake_gemini(*args: str):
    """The fake Gemini API as its own process (tests/fakes/gemini_server.py), not yet started."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.gemini_server import FakeGeminiProcess

    return FakeGeminiProcess(FAKE_KEY, extra_args=tuple(args))


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM) in MB, None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    """The process's resident memory now (VmRSS) in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_cpu_times(pid: int, *, children: bool = False) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used, from /proc ((0, 0) if it is gone); with
    `children`, plus those of the children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]), int(fields[12])
    if children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / ticks, system / ticks


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time (user + system) a process has used (see process_cpu_times)."""
    return sum(process_cpu_times(pid, children=children))


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (nearest rank), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float | None) -> float | None:
    """Seconds → milliseconds, rounded to 0.1."""
    return None if seconds is None else round(seconds * 1000, 1)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    memory_gb = None
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory_gb = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes straight into the README)."""

    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], result: dict[str, Any]) -> None:
    """Print the table, then the result as one JSON line (the last line of the output)."""
    print(f"\n{title}\n")
    print(table(headers, rows))
    print()
    print(json.dumps(result, separators=(",", ":")), flush=True)
