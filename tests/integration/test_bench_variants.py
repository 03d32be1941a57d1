"""bench/variants.py still fits the code it changes: every variant builds the app and answers a chat.

The variants patch internals (methods, functions, the worker's accept batch) or change the tuning,
to measure what a lever costs (bench/README.md); the service never runs them, so this is what
notices a rename or a changed signature. In one process: each variant is applied, answers through
the fake Gemini, and is undone (`bench.variants.restore`).
"""

from __future__ import annotations

import json

import pytest

from app.tuning import Tuning
from bench import variants
from tests.conftest import FAKE_GEMINI_KEY, FIXTURE_BOOK, parse_widget_stream


@pytest.fixture
def build_variant(make_settings, tuning, fake_gemini):
    """Build the app with a variant, answered by the fake Gemini; undone and closed after the test."""
    built = []

    def build(name: str):
        settings = make_settings(gemini_api_key=FAKE_GEMINI_KEY, gemini_base_url=fake_gemini.base_url)
        application = variants.build(name, settings, tuning)
        built.append(application)
        return application

    try:
        yield build
    finally:
        variants.restore()
        for application in built:
            from app.extensions import db

            application.extensions["services"].live_turns.stop()
            with application.app_context():
                db.engine.dispose()


@pytest.mark.parametrize("name", list(variants.ENV))
def test_each_variant_answers_a_chat_through_gemini(name, build_variant, tmp_path, monkeypatch):
    from app.database import upgrade_database

    timeline = tmp_path / "timeline"
    for variable, value in variants.ENV[name].items():
        monkeypatch.setenv(variable, str(timeline) if variable == "BENCH_TIMELINE" else value)
    application = build_variant(name)
    upgrade_database(application)
    services = application.extensions["services"]
    services.startup.run()
    assert services.startup.state == "ready", services.startup.error

    response = application.test_client().post("/api/chat", json={"message": "How do I water basil?"})
    assert response.status_code == 200
    events = parse_widget_stream(response.get_data(as_text=True))
    assert [events[0]["type"], events[-1]["type"]] == ["metadata", "done"]
    # Gemini's answer, not the fallback's: a patch that broke the Gemini path would hide behind it.
    assert events[-1]["answerer"] == "gemini"
    assert "".join(e["content"] for e in events if e["type"] == "token")
    for field, value in variants.TUNING.get(name, {}).items():
        assert getattr(application.extensions["tuning"], field) == value
    if "BENCH_TIMELINE" in variants.ENV[name]:
        lines = [
            json.loads(line) for path in tmp_path.glob("timeline.*") for line in path.read_text().splitlines()
        ]
        assert len(lines) == 1 and "first_byte" in lines[0], lines


def test_an_unknown_variant_is_refused():
    with pytest.raises(SystemExit, match="unknown bench variant 'no-such-lever'"):
        variants.chosen("current,no-such-lever")


def test_a_patch_of_something_that_is_not_there_is_an_error():
    class Service:
        def answer(self) -> str:
            return "ok"

    with pytest.raises(AttributeError, match="has no 'anwser'"):
        variants._patch(Service, "anwser", lambda self: "patched")


def test_gunicorn_gets_the_variants_on_the_tuning_of_its_environment(tmp_path, monkeypatch):
    from app.extensions import db

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DOCS_PATH", str(FIXTURE_BOOK))
    monkeypatch.setenv("INDEX_ON_START", "false")
    monkeypatch.setenv("BENCH_VARIANTS", "no-keepalive-thread")
    monkeypatch.setenv("TEST_TUNING", json.dumps({"max_streams_per_client": 1000}))
    try:
        application = variants.app_from_env()
    finally:
        variants.restore()
    assert application.extensions["tuning"] == Tuning(max_streams_per_client=1000, keepalive_seconds=0)
    with application.app_context():
        db.engine.dispose()
