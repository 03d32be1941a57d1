"""The book owner's report as aligned plain text for a terminal (`flask report`)."""

from __future__ import annotations

from collections.abc import Iterable, Set
from datetime import UTC, datetime
from typing import Any

from app.models import aware
from app.services.reporting import Report, excerpt


def render_text(report: Report) -> str:
    """The report as aligned plain text for a terminal."""
    v = report.volume
    since, until = _minute(report.since), _minute(report.until)
    label = f" ({report.period})" if report.period else ""
    heading = (
        f"Readers' questions, {since} to {until} UTC{label}: {v['conversations']} conversations, "
        f"{v['questions']} questions, {v['answers']} answers, {v['not_covered']} not covered by the book"
    )
    out = [heading, "=" * min(len(heading), 100), ""]

    out += ["Volume"]
    out += _table(
        ["", "count", "detail"],
        [
            ["conversations", v["conversations"], f"{v['new_conversations']} new"],
            ["questions", v["questions"], _pairs(v["questions_by_mode"])],
            ["answers", v["answers"], _pairs(v["answers_by_status"])],
            ["  by answerer", "", _pairs(v["answers_by_answerer"])],
            ["  from the cache", f"{v['answered_from_cache']:.0%}", ""],
            ["  not covered", v["not_covered"], "grounded: false (the book had nothing to cite)"],
        ],
        right={1},
    )

    out += ["", f"Gaps: questions the book did not cover ({len(report.gaps)} distinct, most asked first)"]
    out += (
        _table(
            ["asked", "wordings", "last asked", "example"],
            [
                [g["count"], g["wordings"], _minute(_parse(g["last_asked"])), excerpt(g["question"], 70)]
                for g in report.gaps
            ],
            right={0, 1},
        )
        if report.gaps
        else ["  (none)"]
    )

    out += ["", f"Weak answers: {len(report.weak_answers)} down-voted (newest first)"]
    if not report.weak_answers:
        out += ["  (none)"]
    for answer in report.weak_answers:
        when = _minute(_parse(answer["answered_at"]))
        out += [f"  {when}  {answer['answerer'] or ''}  {answer['message_id']}"]
        out += [f"    question: {excerpt(answer['question'] or '', 90)}"]
        out += [f"    comment:  {excerpt(answer['comment'] or '(none)', 90)}"]
        cited = [_section_label(s) for s in answer["sections"]] or ["(no sources)"]
        out += [f"    {'cited:' if i == 0 else '':<10}{label}" for i, label in enumerate(cited)]
    if report.weak_sections:
        out += ["", "Sections most cited in down-voted answers"]
        out += _table(
            ["count", "section"], [[s["count"], _section_label(s)] for s in report.weak_sections], right={0}
        )

    out += ["", "Most cited pages"]
    out += (
        _table(
            ["count", "page", "title"],
            [[p["count"], p["file"], p["title"] or ""] for p in report.cited_pages],
            right={0},
        )
        if report.cited_pages
        else ["  (none)"]
    )
    out += ["", "Most cited sections"]
    out += (
        _table(
            ["count", "section"], [[s["count"], _section_label(s)] for s in report.cited_sections], right={0}
        )
        if report.cited_sections
        else ["  (none)"]
    )

    out += ["", "Latency of complete answers (ms)"]
    out += _table(
        ["answerer", "answers", "first token p50", "p95", "total p50", "p95"],
        [
            [
                kind,
                row["answers"],
                _ms(row["first_token_ms"]["p50"]),
                _ms(row["first_token_ms"]["p95"]),
                _ms(row["total_ms"]["p50"]),
                _ms(row["total_ms"]["p95"]),
            ]
            for kind, row in report.latency.items()
        ],
        right={1, 2, 3, 4, 5},
    )

    out += ["", f"Gemini errors by code: {_pairs(report.gemini_errors) or '(none)'}"]
    out += ["All errors by code"]
    out += (
        _table(
            ["count", "code", "answerer"],
            [[e["count"], e["code"], e["answerer"] or ""] for e in report.errors],
            right={0},
        )
        if report.errors
        else ["  (none)"]
    )
    return "\n".join(out) + "\n"


def _table(headers: list[str], rows: Iterable[list[Any]], right: Set[int] = frozenset()) -> list[str]:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append(("  " + "  ".join(parts)).rstrip())
    return lines


def _section_label(section: dict[str, Any]) -> str:
    return f"{section['file']} › {section['heading']}" if section["heading"] else section["file"]


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _ms(value: int | None) -> str:
    return "-" if value is None else str(value)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _minute(moment: datetime) -> str:
    return aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
