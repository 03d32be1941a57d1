"""The page the reader is on (`page`): preferred when relevant, harmless when not."""

from __future__ import annotations

import pytest

from tests.conftest import parse_widget_stream

SITE = "https://garden.example.com"
# The watering guide answers this first and the intro, which also names herbs and balconies, close
# behind it (0.86 of the best page).
SHARED_QUESTION = "How do I water herbs on a balcony?"


def ask(client, **body):
    """POST /api/chat as the widget does, with any extra fields."""
    return client.post("/api/chat", json=body, headers={"Origin": "http://localhost:3000"})


def sources(client, **body) -> list[dict]:
    """The streamed sources, in order."""
    response = ask(client, **body)
    assert response.status_code == 200
    return parse_widget_stream(response.get_data(as_text=True))[-1]["sources"]


def first_files(client, **body) -> list[str]:
    """The files of the streamed sources, in order."""
    return [s["file"] for s in sources(client, **body)]


def test_the_current_page_comes_first_when_it_answers(client):
    without = sources(client, message=SHARED_QUESTION)
    assert [s["file"] for s in without][:2] == ["guides/watering.md", "intro.md"]
    intro_page = without[1]["url"].split("#")[0] + "?utm=x"  # as location.href, query and all
    assert first_files(client, message=SHARED_QUESTION, page=intro_page)[0] == "intro.md"
    assert (
        first_files(client, message=SHARED_QUESTION, page=without[0]["url"].split("#")[0])[0]
        == "guides/watering.md"
    )


def test_an_unrelated_page_changes_nothing(client):
    without = first_files(client, message="How often should I water tomatoes?")
    with_page = first_files(
        client, message="How often should I water tomatoes?", page=f"{SITE}/reference/config"
    )
    assert with_page[0] == without[0] == "guides/watering.md"


def test_an_off_topic_question_on_a_page_is_still_refused(client):
    response = ask(client, message="Who won the football world cup in 1998?", page=f"{SITE}/guides/watering")
    events = parse_widget_stream(response.get_data(as_text=True))
    assert events[-1]["sources"] == []


@pytest.mark.parametrize("page", ["javascript:alert(1)", "/" + "a" * 5000, 42, "guides/watering"])
def test_a_bad_page_is_refused_with_the_usual_error(client, page):
    response = ask(client, message="How often should I water tomatoes?", page=page)
    assert response.status_code == 422
    assert response.get_json()["error"]


def test_a_follow_up_carries_the_page(app, client, monkeypatch):
    retriever = app.extensions["services"].chat.retriever
    pages = []
    original = retriever.retrieve

    def recording(*args, **kwargs):
        pages.append(kwargs.get("page"))
        return original(*args, **kwargs)

    monkeypatch.setattr(retriever, "retrieve", recording)
    first = ask(client, message="How often should I water tomatoes?")
    conversation = parse_widget_stream(first.get_data(as_text=True))[0]["conversation_id"]
    response = ask(
        client, message="And herbs?", conversation_id=conversation, page=f"{SITE}/guides/watering/"
    )
    events = parse_widget_stream(response.get_data(as_text=True))
    assert events[0]["conversation_id"] == conversation and events[-1]["sources"]
    assert pages == [None, f"{SITE}/guides/watering/"]


def test_a_selection_question_takes_a_page(client):
    files = first_files(
        client,
        message="What does this mean?",
        mode="selection",
        context="Basil likes moist soil",
        page="/intro",
    )
    assert files[0] == "guides/watering.md"  # the selection's own section is still cited first
