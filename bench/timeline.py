"""Where a burst's first-token time goes: the per-chat timelines of `bench.load --variants timeline`.

    python -m bench.load --streams 100 --rounds 1 --ramp 0 --warm-up 100 --variants timeline ...
    python -m bench.timeline [--chats 100] [--prefix /tmp/bench-timeline]

Reads every `<prefix>.<pid>` file the workers wrote (one JSON line per chat, wall-clock stamps),
keeps the last --chats chats (the measured level; the warm-up came first) and prints, per step,
when it happened after the level's first accepted connection and how long it took after the
step before (p50 / p95 / max, ms), then the chats each worker served.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections import Counter

from bench._common import percentile

STEPS = (
    "accept",
    "queued",
    "thread",
    "flask",
    "stored",
    "embedded",
    "retrieved",
    "first_piece",
    "first_byte",
)


def load(prefix: str) -> list[dict]:
    """Every chat's stamps, in order of acceptance."""
    rows = [json.loads(line) for path in glob.glob(f"{prefix}.*") for line in open(path)]
    return sorted((r for r in rows if r.get("accept")), key=lambda r: r["accept"])


def summary(chats: list[dict]) -> list[list[str]]:
    """Rows: step, p50/p95/max since the first accept, p50/p95 since the step before."""
    start = min(r["accept"] for r in chats)

    def ms(values: list[float]) -> str:
        if not values:
            return "–"
        return (
            " / ".join(f"{1000 * (percentile(values, p) or 0):.0f}" for p in (50, 95))
            + f" / {1000 * max(values):.0f}"
        )

    rows, previous = [], None
    for step in STEPS:
        at = [r[step] - start for r in chats if r.get(step)]
        took = [r[step] - r[previous] for r in chats if r.get(step) and r.get(previous)] if previous else []
        rows.append([step, ms(at), ms(took).rsplit(" / ", 1)[0] if took else "–"])
        previous = step if at else previous
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chats", type=int, default=100, help="the last N chats (the measured level)")
    parser.add_argument("--prefix", default="/tmp/bench-timeline")
    args = parser.parse_args(argv)
    chats = load(args.prefix)[-args.chats :]
    if not chats:
        print(
            f"no timelines under {args.prefix}.* (run bench.load with --variants timeline)", file=sys.stderr
        )
        return 1
    print("| step | at p50 / p95 / max ms | after the step before p50 / p95 ms |")
    print("|---|---|---|")
    for row in summary(chats):
        print("| " + " | ".join(row) + " |")
    print("chats per worker:", dict(Counter(r["pid"] for r in chats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
