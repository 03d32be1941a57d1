"""The answer cache: a repeated first question is answered without retrieval or Gemini, streamed
the same way and marked cached; a re-index (`flask ingest` after the book changed) invalidates it."""

import shutil
from dataclasses import replace

import pytest
from sqlalchemy import select

from app.models import Message
from app.services.answer_cache import AnswerCache, CachedAnswer, normalise_question
from tests.conftest import FAKE_GEMINI_KEY, FIXTURE_BOOK, parse_widget_stream
from tests.support.waiting import wait_until

KEY = FAKE_GEMINI_KEY
QUESTION = "How often should I water tomatoes?"


@pytest.fixture
def fake(fake_gemini):
    return fake_gemini


@pytest.fixture
def book(tmp_path):
    copy = tmp_path / "book"
    shutil.copytree(FIXTURE_BOOK, copy)
    return copy


@pytest.fixture
def app(make_gemini_app, book):
    return make_gemini_app(docs_path=book)


def ask(client, **body):
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return parse_widget_stream(response.get_data(as_text=True))


def text(events):
    return "".join(e["content"] for e in events if e["type"] == "token")


def calls(fake, method):
    return [r for r in fake.requests if r.method_name == method]


def assistant_rows(app):
    store = app.extensions["services"].store
    with store._session_factory() as session:
        return list(
            session.scalars(select(Message).where(Message.role == "assistant").order_by(Message.created_at))
        )


def test_a_repeated_first_question_is_replayed_without_retrieval_or_gemini(app, fake):
    fake.reply_with("Water tomatoes deeply two or three times a week [1].")
    client = app.test_client()
    first = ask(client, message=QUESTION)
    assert first[-1]["cached"] is False and first[-1]["grounded"] is True
    assert len(calls(fake, "streamGenerateContent")) == 1
    fake.reset()

    # Same question, differently typed: normalised to the same key.
    again = ask(client, message="  how often should I WATER tomatoes ?? ")
    assert fake.requests == [], "no answer call and no query embedding: neither Gemini nor retrieval ran"
    assert [e["type"] for e in again][0] == "metadata" and again[-1]["type"] == "done"
    assert [e["content"] for e in again if e["type"] == "token"] == [
        e["content"] for e in first if e["type"] == "token"
    ]
    assert again[-1]["cached"] is True and again[-1]["grounded"] is True
    assert again[-1]["sources"] == first[-1]["sources"]
    assert again[0]["conversation_id"] != first[0]["conversation_id"]

    # Both turns are stored like any other; the replayed one says where it came from.
    rows = assistant_rows(app)
    assert [(r.status, r.answerer) for r in rows] == [
        ("complete", "gemini:gemini-3.5-flash"),
        ("complete", "cache"),
    ]
    assert rows[1].content == rows[0].content and rows[1].sources == rows[0].sources
    assert rows[1].first_token_ms is not None and rows[1].retrieval_ms is None
    stored = client.get(f"/api/conversation/{again[0]['conversation_id']}").get_json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[0]["content"].strip().startswith(
        "how often"
    )

    # The JSON form says so too.
    body = client.post(
        "/api/chat", json={"message": QUESTION}, headers={"Accept": "application/json"}
    ).get_json()
    assert body["cached"] is True and body["answer"] == text(first)


def test_the_format_is_part_of_the_key(app, fake):
    fake.reply_with("**Tomatoes** need deep watering [1].")
    client = app.test_client()
    plain = ask(client, message=QUESTION)
    assert text(plain) == "Tomatoes need deep watering [1]."
    markdown = ask(client, message=QUESTION, format="markdown")
    assert markdown[-1]["cached"] is False and text(markdown) == "**Tomatoes** need deep watering [1]."
    replayed = ask(client, message=QUESTION, format="markdown")
    assert replayed[-1]["cached"] is True and text(replayed) == text(markdown)
    assert replayed[-1]["answerer"] == "gemini" and replayed[-1]["sources"] == markdown[-1]["sources"]
    assert len(calls(fake, "streamGenerateContent")) == 2


def test_follow_ups_selections_and_ungrounded_answers_are_not_cached(app, fake):
    client = app.test_client()
    first = ask(client, message=QUESTION)
    cid = first[0]["conversation_id"]
    fake.reset()
    follow_up = ask(client, message=QUESTION, conversation_id=cid)
    assert follow_up[-1]["cached"] is False and fake.requests  # never looked up: Gemini was asked

    selection = "Tomatoes need deep watering two or three times a week."
    for _ in range(2):
        events = ask(client, message="What does this mean?", mode="selection", context=selection)
        assert events[-1]["cached"] is False
    fake.reset()

    for _ in range(2):  # below the relevance floor: not grounded, never kept
        events = ask(client, message="quantum chromodynamics lattice")
        assert events[-1]["grounded"] is False and events[-1]["cached"] is False


def test_a_failed_answer_is_not_cached(app, fake):
    client = app.test_client()
    fake.reply_with("one two three four five six")
    fake.drop_after_events = 2
    assert ask(client, message=QUESTION)[-2]["type"] == "error"
    fake.drop_after_events = None
    fake.reset()
    assert ask(client, message=QUESTION)[-1]["cached"] is False
    assert len(calls(fake, "streamGenerateContent")) == 1


def test_flask_ingest_of_a_changed_book_invalidates_the_cache(app, runner, fake, book):
    client = app.test_client()
    ask(client, message=QUESTION)
    assert ask(client, message=QUESTION)[-1]["cached"] is True

    page = book / "guides" / "watering.md"
    page.write_text(page.read_text().replace("two or three times a week", "every second day"))
    index = app.extensions["services"].index
    before = index.version()
    result = runner.invoke(args=["ingest", "--json"])
    assert result.exit_code == 0, result.output
    wait_until(
        lambda: index.version() != before, timeout=5
    )  # readers follow the live pointer within a second

    fake.reset()
    events = ask(client, message=QUESTION)
    assert events[-1]["cached"] is False
    assert len(calls(fake, "streamGenerateContent")) == 1
    prompt = calls(fake, "streamGenerateContent")[0].body["contents"][-1]["parts"][0]["text"]
    assert "every second day" in prompt
    assert ask(client, message=QUESTION)[-1]["cached"] is True  # cached again, for the new version


def test_size_zero_disables_the_cache(make_gemini_app, gemini_tuning, fake, book):
    app = make_gemini_app(replace(gemini_tuning, answer_cache_entries=0), docs_path=book)
    client = app.test_client()
    for _ in range(2):
        assert ask(client, message=QUESTION)[-1]["cached"] is False
    assert len(calls(fake, "streamGenerateContent")) == 2
    assert app.extensions["services"].answer_cache is None


def test_offline_answers_are_cached_too(make_app, book):
    client = make_app(docs_path=book).test_client()
    first, second = ask(client, message=QUESTION), ask(client, message=QUESTION)
    assert (first[-1]["cached"], second[-1]["cached"]) == (False, True)
    assert text(first) == text(second)


def test_normalisation_and_the_lru_bound():
    assert (
        normalise_question("  How do I  DEPLOY?! ")
        == normalise_question("how do i deploy")
        == "how do i deploy"
    )
    assert normalise_question("Ｗｈａｔ is MDX？") == "what is mdx"
    assert normalise_question("What is X vs Y?") != normalise_question("What is Y vs X?")

    cache = AnswerCache(2)
    entry = CachedAnswer(("a",), (), "offline")
    for question in ("one", "two"):
        cache.put(cache.key("v1", question), entry)
    assert cache.get(cache.key("v1", "one")) is entry  # "one" is now the most recently used
    cache.put(cache.key("v1", "three"), entry)
    assert len(cache) == 2 and cache.get(cache.key("v1", "two")) is None
    assert cache.get(cache.key("v2", "one")) is None, "another index version is another key"
    with pytest.raises(ValueError):
        AnswerCache(0)
