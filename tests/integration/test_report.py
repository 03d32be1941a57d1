"""`flask report`: a database seeded through the real chat API (offline answerer, the fixture
book, and the fake Gemini for errors), read back as JSON and as the table for people."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from app import create_app
from app.database import upgrade_database
from app.models import Conversation, Message, utcnow
from tests.conftest import ROOT, TEST_DATABASE_URL, parse_widget_stream
from tests.fakes.gemini_server import FakeGemini
from tests.support.waiting import wait_until

COVERED = "How do I water basil?"
# One question the book does not cover, in three wordings, and another asked once.
QCD = [
    "quantum chromodynamics lattice?",
    "The lattice of Quantum Chromodynamics",
    "Quantum chromodynamics lattices!",
]
ORCHIDS = "Can I grow orchids on a balcony in winter?"
SELECTED = "Basil likes moist soil, while rosemary and thyme prefer to dry out between waterings."


def ask(client, message, **body):
    response = client.post("/api/chat", json={"message": message, **body})
    assert response.status_code == 200, response.get_data(as_text=True)
    return parse_widget_stream(response.get_data(as_text=True))


def down_vote(client, message_id, comment):
    assert (
        client.post(
            "/api/feedback", json={"message_id": message_id, "vote": "down", "comment": comment}
        ).status_code
        == 201
    )


def run_report(app, *args):
    result = app.test_cli_runner().invoke(args=["report", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def age_conversation(app, conversation_id, days):
    """Move a conversation (all its turns) `days` into the past, as if asked then."""
    from app.extensions import db

    shift = timedelta(days=days)
    with app.app_context(), db.engine.begin() as conn:
        conversation = uuid.UUID(conversation_id)
        moment = utcnow() - shift
        conn.execute(update(Message).where(Message.conversation_id == conversation).values(created_at=moment))
        conn.execute(
            update(Conversation)
            .where(Conversation.id == conversation)
            .values(created_at=moment, updated_at=moment)
        )


@pytest.fixture
def seeded(app, client):
    """Eight questions in the last hour, and one gap asked ten days ago."""
    first = ask(client, COVERED)
    again = ask(client, COVERED)  # the same first question: replayed from the answer cache
    assert again[-1]["cached"] is True
    gaps = [ask(client, question) for question in QCD + [ORCHIDS]]
    assert all(events[-1]["grounded"] is False for events in gaps)
    follow_up = ask(client, "And how often for tomatoes?", conversation_id=first[0]["conversation_id"])
    selection = ask(client, "What does this mean?", mode="selection", context=SELECTED)
    down_vote(client, selection[0]["message_id"], "Too vague")
    old = ask(client, "How do I prune roses in autumn?")
    assert old[-1]["grounded"] is False
    age_conversation(app, old[0]["conversation_id"], days=10)
    return {"first": first, "follow_up": follow_up, "selection": selection}


def test_volume_counts_what_readers_asked_in_the_period(app, seeded):
    report = json.loads(run_report(app, "--json", "--since", "7d"))
    volume = report["volume"]
    assert volume["conversations"] == 7 and volume["new_conversations"] == 7  # the follow-up joins one
    assert volume["questions"] == 8
    assert volume["questions_by_mode"] == {"general": 7, "selection": 1}
    assert volume["answers"] == 8
    assert volume["answers_by_status"] == {"complete": 8, "interrupted": 0, "failed": 0}
    assert volume["answers_by_answerer"] == {"offline": 7, "cache": 1}
    assert volume["answered_from_cache"] == round(1 / 8, 3)
    assert volume["not_covered"] == 4
    assert report["period"]["label"] == "7d"


def test_gaps_group_rewordings_most_frequent_first(app, seeded):
    gaps = json.loads(run_report(app, "--json"))["gaps"]
    assert [(gap["count"], gap["wordings"]) for gap in gaps] == [(3, 3), (1, 1)]
    assert gaps[0]["question"] in QCD and gaps[1]["question"] == ORCHIDS
    # Ten days ago is outside the default week, inside two weeks.
    assert not any("roses" in gap["question"] for gap in gaps)
    older = json.loads(run_report(app, "--json", "--since", "2w"))["gaps"]
    assert any(gap["question"] == "How do I prune roses in autumn?" for gap in older)


def test_weak_answers_show_question_comment_and_cited_sections(app, seeded):
    weak = json.loads(run_report(app, "--json"))["weak_answers"]
    [answer] = weak["answers"]
    assert answer["message_id"] == seeded["selection"][0]["message_id"]
    assert (answer["question"], answer["comment"]) == ("What does this mean?", "Too vague")
    cited = {(s["file"], s["heading"]) for s in answer["sections"]}
    assert cited and {file for file, _ in cited} == {"guides/watering.md"}
    assert cited == {(s["file"], s["heading"]) for s in seeded["selection"][-1]["sources"]}
    assert {(s["file"], s["heading"]) for s in weak["sections"]} == cited
    assert all(s["count"] == 1 for s in weak["sections"])


def test_most_cited_pages_and_sections(app, seeded):
    cited = json.loads(run_report(app, "--json"))["most_cited"]
    shown: dict[str, int] = {}
    for events in seeded.values():
        for file in {s["file"] for s in events[-1]["sources"]}:
            shown[file] = shown.get(file, 0) + 1
    pages = {page["file"]: page["count"] for page in cited["pages"]}
    # The cached replay cites what the first answer cited: it counts again.
    for file in {s["file"] for s in seeded["first"][-1]["sources"]}:
        shown[file] += 1
    assert pages == shown
    assert cited["pages"][0]["count"] == max(shown.values())
    herbs = next(s for s in cited["sections"] if s["heading"] == "Watering > Watering herbs")
    assert herbs["url"] == "https://garden.example.com/guides/watering#herbs"


def test_latency_percentiles_per_answerer(app, seeded):
    latency = json.loads(run_report(app, "--json"))["latency"]
    assert set(latency) == {"all", "offline", "cache"}
    assert (latency["all"]["answers"], latency["offline"]["answers"], latency["cache"]["answers"]) == (
        8,
        7,
        1,
    )
    for row in latency.values():
        for measure in ("first_token_ms", "total_ms"):
            assert 0 <= row[measure]["p50"] <= row[measure]["p95"]


def test_table_for_people_names_the_period_and_counts(app, seeded):
    text = run_report(app, "--since", "24h")
    heading = text.splitlines()[0]
    assert "(24h)" in heading and "UTC" in heading
    assert "7 conversations, 8 questions, 8 answers, 4 not covered" in heading
    gaps = text.split("Gaps:")[1].split("Weak answers")[0]
    assert "3         3" in gaps.splitlines()[2] and ORCHIDS in gaps
    assert "comment:  Too vague" in text
    assert "Watering > Watering herbs" in text.split("Most cited sections")[1]


def test_a_bad_period_is_a_usage_error(app):
    result = app.test_cli_runner().invoke(args=["report", "--since", "yesterday"])
    assert result.exit_code == 2 and "30m, 24h, 7d or 2w" in result.output


def test_an_empty_period_reports_zeros(app):
    report = json.loads(run_report(app, "--json", "--since", "30m"))
    assert report["volume"]["questions"] == 0 and report["gaps"] == []
    assert report["latency"]["all"]["first_token_ms"] == {"p50": None, "p95": None}
    assert "(none)" in run_report(app)


def test_interrupted_and_gemini_failures_are_counted_by_code(make_settings, gemini_tuning):
    key = "AIza-report-test-key-0015"
    with FakeGemini(api_key=key) as fake:
        app = create_app(make_settings(gemini_api_key=key, gemini_base_url=fake.base_url), gemini_tuning)
        upgrade_database(app)
        app.extensions["services"].startup.run()
        client = app.test_client()
        fake.fail_next(10, 429, method="streamGenerateContent", retry_delay="7s")
        # Gemini's quota is out: the reader still gets the book's own words (the fallback), and
        # the turn keeps Gemini's error code for the report.
        fallback = ask(client, "How do I water basil?")
        assert fallback[-1]["answerer"] == "offline"
        fake.reset()
        fake.reply_with("one two three four five six seven eight")
        fake.drop_after_events = 3
        events = ask(client, COVERED)
        assert events[-2]["code"] == "stream_interrupted"
        fake.reset()
        fake.reply_with(" ".join(["water"] * 200))
        fake.tokens_per_second = 50
        response = client.post("/api/chat", json={"message": COVERED}, buffered=False)
        chunks = iter(response.response)
        first = next(chunks)  # the metadata event; then a token, and the reader goes away
        next(chunks)
        response.close()
        conversation = parse_widget_stream(first.decode() if isinstance(first, bytes) else first)[0][
            "conversation_id"
        ]
        # The answer is stored as interrupted once the stream's producer sees the reader gone.
        wait_until(
            lambda: (
                client.get(f"/api/conversation/{conversation}").get_json()["messages"][1]["status"]
                != "streaming"
            ),
            timeout=10,
            message="the interrupted answer was never stored",
        )
        report = json.loads(run_report(app, "--json"))
    model = app.extensions["services"].settings.gemini_model
    assert report["errors"]["gemini"] == {"quota_exhausted": 1, "stream_interrupted": 1}
    assert {(e["code"], e["answerer"], e["count"]) for e in report["errors"]["all"]} == {
        ("quota_exhausted", "offline", 1),
        ("stream_interrupted", f"gemini:{model}", 1),
        ("client_disconnected", f"gemini:{model}", 1),
    }
    assert report["volume"]["answers_by_status"] == {"complete": 1, "interrupted": 1, "failed": 1}
    assert report["volume"]["answers_by_answerer"] == {f"gemini:{model}": 2, "offline": 1}


def flask_command(tmp_path, database_url, *args):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(
        FLASK_APP="wsgi",
        DATABASE_URL=database_url,
        INSTANCE_PATH=str(tmp_path / "laptop"),
        LOG_LEVEL="DEBUG",
        PYTHONUNBUFFERED="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_from_a_laptop_stdout_holds_only_the_report_and_nothing_else_is_touched(
    app, seeded, tmp_path, database_url
):
    result = flask_command(tmp_path, database_url, "report", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # logs at DEBUG, none of them on stdout
    assert report["volume"]["questions"] == 8
    # No index opened or built, no start-up lock taken: the instance folder stays empty.
    assert list((tmp_path / "laptop").iterdir()) == []


@pytest.mark.skipif(
    bool(TEST_DATABASE_URL), reason="an empty SQLite file stands for a database never migrated"
)
def test_an_unmigrated_database_is_a_clear_error_and_is_not_migrated(tmp_path):
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = flask_command(tmp_path, url, "report")
    assert result.returncode == 1
    assert "cannot read the conversations" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert inspect(create_engine(url)).get_table_names() == []
