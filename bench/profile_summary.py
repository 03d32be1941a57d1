"""Summarise a py-spy profile (collapsed stacks, `py-spy record --format raw`) of one worker.

    python -m bench.profile_summary PROFILE.txt [--top 25]

Prints, as Markdown: where the samples' innermost frames are (by library or app module: the
CPU each spends itself), and the functions with the most samples beneath them (inclusive),
which shows what a request's phases cost (retrieval, storing, streaming, logging...).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+):\d+\)$")

# Where a file belongs, first match wins (paths as py-spy prints them, relative to sys.path).
AREAS = [
    ("google/genai", "google-genai SDK"),
    ("pydantic", "pydantic"),
    ("httpx2", "httpx2 (Gemini HTTP)"),
    ("httpcore", "httpx2 (Gemini HTTP)"),
    ("h11", "httpx2 (Gemini HTTP)"),
    ("sqlalchemy", "SQLAlchemy + driver"),
    ("sqlite3", "SQLAlchemy + driver"),
    ("psycopg", "SQLAlchemy + driver"),
    ("qdrant", "qdrant"),
    ("snowballstemmer", "retrieval (stemming)"),
    ("app/services/retrieval", "retrieval"),
    ("app/services/index", "retrieval"),
    ("app/services/providers", "app Gemini provider"),
    ("app/services/chat", "app chat service"),
    ("app/services/conversations", "app conversation store"),
    ("app/api/sse", "SSE framing / keep-alive"),
    ("app/", "app (other)"),
    ("flask", "Flask + Werkzeug"),
    ("werkzeug", "Flask + Werkzeug"),
    ("gunicorn", "gunicorn"),
    ("prometheus_client", "metrics (prometheus_client)"),
    ("logging", "logging"),
    ("json/", "json"),
    ("queue.py", "threads / queues"),
    ("threading.py", "threads / queues"),
    ("concurrent/", "threads / queues"),
    ("socket.py", "sockets / selectors"),
    ("selectors.py", "sockets / selectors"),
    ("ssl.py", "sockets / selectors"),
]


def area(file: str) -> str:
    """The library or app module a source file belongs to."""
    for prefix, name in AREAS:
        if prefix in file:
            return name
    return "other: " + file.rsplit("/", 1)[-1]


def read(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """(frames outermost first as (function, file), samples) per collapsed stack."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame.strip())
            if match:
                frames.append((match["func"], match["file"]))
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def summarise(path: Path, top: int) -> str:
    """Markdown: self samples by area, then inclusive samples by function."""
    stacks = read(path)
    total = sum(count for _, count in stacks) or 1
    by_area: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        by_area[area(frames[-1][1])] += count
        for name in {f"{func} ({file})" for func, file in frames}:
            inclusive[name] += count
    lines = [
        f"{path.name}: {total} samples",
        "",
        "| where the CPU is spent (innermost frame) | share |",
        "|---|---|",
    ]
    lines += [f"| {name} | {count / total:.1%} |" for name, count in by_area.most_common(top)]
    lines += ["", "| function (with everything it calls) | share |", "|---|---|"]
    lines += [f"| `{name}` | {count / total:.1%} |" for name, count in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summarise(args.profile, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
