"""The services' metrics hooks, read from the process's own registry (no gunicorn): Gemini calls by
outcome, failures by code, tokens, first-token time, active streams."""

from dataclasses import replace

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FAKE_GEMINI_KEY

KEY = FAKE_GEMINI_KEY


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


TOKEN = "scrape-token-0000"


@pytest.fixture
def fake(fake_gemini):
    return fake_gemini


@pytest.fixture
def client(make_gemini_app, gemini_tuning):
    no_cache = replace(gemini_tuning, answer_cache_entries=0)
    return make_gemini_app(no_cache, gemini_fallback=False, metrics_token=TOKEN).test_client()


def test_gemini_calls_errors_and_tokens_are_counted(client, fake):
    before = {
        "ok": sample("gemini_calls_total", kind="answer", code="ok"),
        "503": sample("gemini_calls_total", kind="answer", code="503"),
        "failed": sample("gemini_errors_total", kind="answer", code="model_unavailable"),
        "prompt": sample("gemini_tokens_total", kind="answer", type="prompt"),
        "completion": sample("gemini_tokens_total", kind="answer", type="completion"),
        "ttft": sample("chat_first_token_seconds_count", source="gemini"),
        "embed": sample("gemini_calls_total", kind="embedding", code="ok"),
    }
    fake.fail_next(1, 503, method="streamGenerateContent")
    answered = client.post("/api/chat", json={"message": "How do I water basil?"})
    assert answered.status_code == 200 and answered.get_data()  # retried once; read to the end
    fake.fail_next(5, 503, method="streamGenerateContent")
    assert client.post("/api/chat", json={"message": "How do I water basil?"}).status_code == 503

    assert sample("gemini_calls_total", kind="answer", code="ok") - before["ok"] == 1
    assert sample("gemini_calls_total", kind="answer", code="503") - before["503"] == 1 + 3  # 3 attempts
    assert sample("gemini_errors_total", kind="answer", code="model_unavailable") - before["failed"] == 1
    assert sample("gemini_tokens_total", kind="answer", type="prompt") > before["prompt"]
    assert sample("gemini_tokens_total", kind="answer", type="completion") > before["completion"]
    assert sample("chat_first_token_seconds_count", source="gemini") - before["ttft"] == 1
    assert (
        sample("gemini_calls_total", kind="embedding", code="ok") - before["embed"] == 2
    )  # query embeddings
    assert sample("chat_active_streams") == 0


def test_metrics_page_parses_without_gunicorn(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {
        "http_request_duration_seconds",
        "chat_first_token_seconds",
        "chat_retrieval_seconds",
        "gemini_calls",
        "gemini_errors",
        "gemini_tokens",
        "chat_active_streams",
        "answer_cache_lookups",
        "db_pool_checked_out",
    } <= names


def test_metrics_need_the_token_and_are_not_served_without_one(client, make_app):
    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    for response in (missing, wrong):
        assert response.status_code == 401 and response.is_json
        assert response.get_json()["error"] == "unauthorized" and TOKEN not in response.get_data(as_text=True)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    # No token configured: not served at all, as if the route did not exist.
    unset = make_app().test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert unset.status_code == 404 and unset.get_json()["error"] == "not_found"
