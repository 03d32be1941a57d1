"""The widget's API through Flask's test client, on a real database and a real embedded index."""

import uuid

import pytest

from tests.conftest import parse_widget_stream

WIDGET_HEADERS = {"Content-Type": "application/json", "Origin": "http://localhost:3000"}


def ask(client, **body):
    return client.post("/api/chat", json=body, headers={"Origin": "http://localhost:3000"})


def test_chat_streams_metadata_tokens_done_with_sources(client):
    response = ask(client, message="How often should I water tomatoes?")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = parse_widget_stream(response.get_data(as_text=True))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "metadata" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"token"}
    answer = "".join(e["content"] for e in events if e["type"] == "token")
    assert "two or three times a week" in answer and "[1]" in answer
    sources = events[-1]["sources"]
    assert sources[0]["file"] == "guides/watering.md"
    assert sources[0]["heading"] == "Watering > Watering tomatoes"
    assert sources[0]["url"] == "https://garden.example.com/guides/watering#watering-tomatoes"
    assert 0 < sources[0]["similarity"] <= 1
    assert events[-1]["grounded"] is True


def test_stored_conversation_matches_what_was_streamed(client):
    events = parse_widget_stream(ask(client, message="How do I water basil?").get_data(as_text=True))
    cid = events[0]["conversation_id"]
    streamed = "".join(e["content"] for e in events if e["type"] == "token")
    body = client.get(f"/api/conversation/{cid}").get_json()
    assert body["conversation_id"] == cid
    user, assistant = body["messages"]
    assert (user["role"], user["content"]) == ("user", "How do I water basil?")
    assert (assistant["role"], assistant["content"], assistant["status"]) == (
        "assistant",
        streamed,
        "complete",
    )
    assert assistant["sources"] == events[-1]["sources"]
    assert user["created_at"] <= assistant["created_at"]


def test_follow_up_stays_in_the_conversation(client):
    first = parse_widget_stream(ask(client, message="How much sun do tomatoes need?").get_data(as_text=True))
    cid = first[0]["conversation_id"]
    second = parse_widget_stream(
        ask(client, message="And what about frost dates?", conversation_id=cid).get_data(as_text=True)
    )
    assert second[0]["conversation_id"] == cid
    assert len(client.get(f"/api/conversation/{cid}").get_json()["messages"]) == 4


def test_selection_mode_answers_from_the_selected_text(client):
    selection = "Basil likes moist soil, while rosemary and thyme prefer to dry out between waterings."
    events = parse_widget_stream(
        ask(client, message="Which herbs like dry soil?", mode="selection", context=selection).get_data(
            as_text=True
        )
    )
    answer = "".join(e["content"] for e in events if e["type"] == "token")
    assert "rosemary and thyme prefer" not in answer  # explained from the book, not echoed
    assert "if it is dry two centimetres down, it is time to water" in answer
    assert any(s["file"] == "guides/watering.md" for s in events[-1]["sources"])


def test_json_answer_for_clients_that_ask_for_it(client):
    response = client.post(
        "/api/chat", json={"message": "How do I water basil?"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert {"conversation_id", "answer", "sources"} <= set(body)
    assert body["sources"][0]["file"] == "guides/watering.md"


def test_question_the_book_does_not_cover(client):
    events = parse_widget_stream(ask(client, message="quantum chromodynamics lattice").get_data(as_text=True))
    answer = "".join(e["content"] for e in events if e["type"] == "token")
    assert "couldn't find" in answer
    assert events[-1]["sources"] == [] and events[-1]["grounded"] is False


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"message": "hi", "mode": "selection"}, 422, "context"),
        ({"message": ""}, 422, "message"),
        ({"message": "   "}, 422, "message"),
        ({"message": "x" * 2001}, 422, "message"),
        ({"message": "hi", "mode": "shout"}, 422, "mode"),
        ({"message": "hi", "conversation_id": "not-a-uuid"}, 422, "conversation_id"),
        ({"mode": "general"}, 422, "message"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(client, body, status, field):
    response = client.post("/api/chat", json=body)
    assert response.status_code == status
    error = response.get_json()
    assert error["status"] == status and error["error"] == "validation_error"
    assert field in [d["field"] for d in error["details"]]


def test_unknown_conversation_gets_404_before_any_stream(client):
    response = ask(client, message="hello", conversation_id=str(uuid.uuid4()))
    assert response.status_code == 404 and response.is_json
    assert response.get_json()["error"] == "not_found"


def test_not_json_gets_415_and_broken_json_gets_400(client):
    assert (
        client.post(
            "/api/chat", data="message=hi", content_type="application/x-www-form-urlencoded"
        ).status_code
        == 415
    )
    broken = client.post("/api/chat", data="{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"] == "bad_request"


def test_oversized_body_gets_413(client):
    response = client.post("/api/chat", json={"message": "x", "context": "y" * 200_000})
    assert response.status_code == 413 and response.get_json()["error"] == "payload_too_large"


def test_conversation_lookup_errors(client):
    assert client.get(f"/api/conversation/{uuid.uuid4()}").status_code == 404
    malformed = client.get("/api/conversation/not-a-uuid")
    assert malformed.status_code == 422 and malformed.is_json


def test_unknown_route_and_wrong_method_are_json(client):
    missing = client.get("/api/nope")
    assert missing.status_code == 404 and missing.is_json
    wrong = client.get("/api/chat")
    assert wrong.status_code == 405 and wrong.is_json and "POST" in wrong.headers["Allow"]


def test_cors_preflight_from_a_listed_origin_succeeds(client):
    response = client.options(
        "/api/chat",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_cors_ignores_unlisted_origins(client):
    response = client.options(
        "/api/chat", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    post = client.post("/api/chat", json={"message": "hi"}, headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in post.headers


def test_health_reports_each_service(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["services"]["database"]["state"] == "up"
    assert body["services"]["index"]["points"] > 0
    assert body["services"]["answerer"]["mode"] == "offline"
    assert client.get("/api/health/live").status_code == 200


def test_root_names_the_service(client):
    body = client.get("/").get_json()
    assert body["service"] and body["version"] and body["docs"]


def test_a_widget_on_another_origin_can_read_the_request_id_and_retry_after(client):
    response = client.get("/api/health", headers={"Origin": "http://localhost:3000"})
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"x-request-id", "retry-after"} <= exposed
    assert response.headers["X-Request-ID"]
