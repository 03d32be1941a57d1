"""The Gemini provider over real HTTP against the fake Gemini server (never a mocked SDK)."""

import math

import pytest
from google.genai import types

from app.services.answering.base import AnswerUnavailable
from tests.fakes.gemini_server import FakeGemini
from tests.support.gemini import provider_for as support_provider_for

KEY = "AIza-test-provider-key-0001"


@pytest.fixture
def fake():
    with FakeGemini(api_key=KEY) as server:
        yield server


def provider_for(fake, waits=None, **overrides):
    return support_provider_for(fake, KEY, waits, **overrides)


def user(text):
    return [types.Content(role="user", parts=[types.Part(text=text)])]


def generation_calls(fake):
    return [r for r in fake.requests if r.method_name in ("streamGenerateContent", "generateContent")]


def test_stream_yields_the_fakes_text_in_order_with_usage(fake):
    fake.reply_with("Deploy with make space then push the bundle [1].")
    fake.chunk_words = 2
    stream = provider_for(fake).stream(user("How do I deploy?"), system_instruction="Be grounded.")
    assert "".join(stream) == "Deploy with make space then push the bundle [1]."
    assert stream.usage.completion_tokens and stream.usage.prompt_tokens
    (request,) = generation_calls(fake)
    assert request.query == "alt=sse"
    assert request.body["systemInstruction"]["parts"][0]["text"] == "Be grounded."
    assert request.body["generationConfig"]["temperature"] == 0.2
    assert request.headers["x-goog-api-key"] == KEY


def test_overload_before_the_first_token_is_retried(fake):
    fake.fail_next(2, 503)
    waits = []
    stream = provider_for(fake, waits).stream(user("q"), system_instruction="s")
    assert "".join(stream)
    assert len(generation_calls(fake)) == 3 and len(waits) == 2
    assert waits[1] > waits[0]  # exponential


def test_retry_honours_retry_info(fake):
    fake.fail_next(1, 429, retry_delay="2s")
    waits = []
    provider = provider_for(fake, waits, max_backoff=3.0)
    assert "".join(provider.stream(user("q"), system_instruction="s"))
    assert 1.8 <= waits[0] <= 2.2  # the server's 2 s, not the 10 ms exponential step (with jitter)


def test_a_pause_longer_than_the_cap_is_not_waited_for(fake):
    fake.fail_next(1, 429, retry_delay="7s")
    waits = []
    with pytest.raises(AnswerUnavailable) as info:
        provider_for(fake, waits, max_backoff=3.0).stream(user("q"), system_instruction="s")
    assert waits == [] and len(generation_calls(fake)) == 1
    assert info.value.retry_after == 7


def test_quota_exhausted_is_named_as_such_with_retry_after(fake):
    fake.fail_next(5, 429, retry_delay="0.01s")
    with pytest.raises(AnswerUnavailable) as info:
        provider_for(fake).stream(user("q"), system_instruction="s")
    assert (info.value.code, info.value.http_status, info.value.retry_after) == ("quota_exhausted", 429, 1)
    assert len(generation_calls(fake)) == 3
    assert KEY not in info.value.message


def test_bad_key_is_not_retried(fake):
    provider = provider_for(fake, api_key="AIza-a-key-that-was-revoked")
    with pytest.raises(AnswerUnavailable) as info:
        provider.stream(user("q"), system_instruction="s")
    assert info.value.code == "model_misconfigured"
    assert len(generation_calls(fake)) == 1


def test_slow_first_token_times_out_after_retries(fake):
    fake.first_token_delay = 1.0
    with pytest.raises(AnswerUnavailable) as info:
        provider_for(fake, timeout_seconds=0.2, max_attempts=2).stream(user("q"), system_instruction="s")
    assert info.value.code == "timeout"
    assert len(generation_calls(fake)) == 2


def test_error_after_tokens_is_raised_mid_stream_and_not_retried(fake):
    fake.reply_with("one two three four five six")
    fake.error_after_events = 2
    stream = provider_for(fake).stream(user("q"), system_instruction="s")
    received = [next(stream), next(stream)]
    with pytest.raises(AnswerUnavailable) as info:
        next(stream)
    assert received == ["one ", "two "]
    assert info.value.code == "model_unavailable"
    assert len(generation_calls(fake)) == 1


def test_dropped_connection_mid_stream(fake):
    fake.reply_with("one two three four five six")
    fake.drop_after_events = 3
    stream = provider_for(fake).stream(user("q"), system_instruction="s")
    pieces = []
    with pytest.raises(AnswerUnavailable) as info:
        for piece in stream:
            pieces.append(piece)
    assert pieces == ["one ", "two ", "three "]
    assert info.value.code == "stream_interrupted"


def test_embeddings_are_batched_by_100_and_unit_length(fake):
    provider = provider_for(fake)
    vectors = provider.embed_documents([f"text number {i}" for i in range(250)])
    batches = [len(r.body["requests"]) for r in fake.requests if r.method_name == "batchEmbedContents"]
    assert batches == [100, 100, 50] and provider.requests_made == 3
    assert len(vectors) == 250 and all(len(v) == 768 for v in vectors)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-6)
    assert fake.requests[0].body["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"


def test_embeddings_retry_on_429(fake):
    fake.fail_next(1, 429, method="batchEmbedContents", retry_delay="0s")
    provider = provider_for(fake)
    assert len(provider.embed_documents(["a", "b"])) == 2
    assert provider.requests_made == 2


def test_circuit_opens_after_repeated_failures_and_spends_no_more_quota(fake):
    fake.fail_next(100, 503)
    provider = provider_for(fake, breaker_threshold=2, max_attempts=1, breaker_cooldown=60)
    for _ in range(2):
        with pytest.raises(AnswerUnavailable):
            provider.stream(user("q"), system_instruction="s")
    assert provider.breaker.state == "open"
    sent = len(fake.requests)
    with pytest.raises(AnswerUnavailable) as info:
        provider.stream(user("q"), system_instruction="s")
    assert len(fake.requests) == sent  # failed fast, nothing sent
    assert info.value.retry_after and info.value.retry_after > 0


def test_config_repr_hides_the_key(fake):
    assert KEY not in repr(provider_for(fake).config)
