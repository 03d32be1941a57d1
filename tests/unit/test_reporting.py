"""The report's pure parts: periods, grouping rewordings of a question, percentiles, the table."""

from datetime import UTC, datetime, timedelta

import pytest

from app.services.report_text import render_text
from app.services.reporting import Report, parse_period, question_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_periods(text, expected):
    assert parse_period(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d7", "7y", "0d", "-1d", "1.5h", "yesterday"])
def test_bad_periods_say_what_is_expected(text):
    with pytest.raises(ValueError, match="30m, 24h, 7d or 2w"):
        parse_period(text)


@pytest.mark.parametrize(
    "rewordings",
    [
        [
            "How do I deploy to Vercel?",
            "deploying to vercel",
            "Vercel deployment",
            "how to DEPLOY on Vercel!!",
        ],
        ["Does it support dark mode?", "dark mode support", "Is dark mode supported?"],
    ],
)
def test_rewordings_of_one_question_share_a_key(rewordings):
    assert len({question_key(text) for text in rewordings}) == 1


def test_different_questions_keep_different_keys():
    assert question_key("How do I deploy to Vercel?") != question_key("How do I deploy to Netlify?")
    assert question_key("Is dark mode supported?") != question_key("Is the sidebar supported?")


def test_a_question_of_stop_words_only_still_has_a_key():
    assert question_key("What is it?") == question_key("what is it") != ""


def empty_report(**changes):
    moment = datetime(2026, 12, 4, 15, 40, tzinfo=UTC)
    values = dict(
        since=moment - timedelta(days=7),
        until=moment,
        period="7d",
        volume={
            "conversations": 0,
            "new_conversations": 0,
            "questions": 0,
            "questions_by_mode": {"general": 0},
            "answers": 0,
            "answers_by_status": {"complete": 0},
            "answers_by_answerer": {},
            "answered_from_cache": 0.0,
            "not_covered": 0,
        },
        gaps=[],
        weak_answers=[],
        weak_sections=[],
        cited_pages=[],
        cited_sections=[],
        latency={
            "all": {
                "answers": 0,
                "first_token_ms": {"p50": None, "p95": None},
                "total_ms": {"p50": None, "p95": None},
            }
        },
        errors=[],
    )
    values.update(changes)
    return Report(**values)


def test_the_heading_names_the_period_in_utc_and_the_counts():
    heading = render_text(empty_report()).splitlines()[0]
    assert heading == (
        "Readers' questions, 2026-11-27 15:40 to 2026-12-04 15:40 UTC (7d): 0 conversations, "
        "0 questions, 0 answers, 0 not covered by the book"
    )


def test_columns_line_up():
    gaps = [
        {
            "question": "How do I deploy?",
            "count": 12,
            "wordings": 5,
            "last_asked": "2026-12-04T15:00:00+00:00",
        },
        {"question": "Dark mode?", "count": 3, "wordings": 1, "last_asked": "2026-12-03T09:30:00+00:00"},
    ]
    lines = render_text(empty_report(gaps=gaps)).split("Gaps:")[1].splitlines()[1:4]
    assert [
        line.index("How do I deploy?" if i == 1 else "example" if i == 0 else "Dark mode?")
        for i, line in enumerate(lines)
    ] == [lines[0].index("example")] * 3
    assert lines[1].startswith("     12") and lines[2].startswith("      3")
