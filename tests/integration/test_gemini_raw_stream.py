"""Streamed answers read straight off the wire (not through google-genai's per-event models),
over real HTTP against the fake Gemini: the same request as the SDK's, the same failures."""

import logging
import time

import pytest
from google.genai import types

from app.services.answering.base import AnswerUnavailable
from app.services.observer import Observer
from tests.fakes.gemini_server import FakeGemini
from tests.support.gemini import provider_for as support_provider_for

KEY = "AIza-test-raw-stream-key-0003"
LONG_ANSWER = " ".join(f"word{i}" for i in range(200))


@pytest.fixture
def fake():
    with FakeGemini(api_key=KEY) as server:
        yield server


class RecordingObserver(Observer):
    def __init__(self):
        self.calls = []

    def gemini_call(self, kind, code, seconds):
        self.calls.append(("call", kind, code))

    def gemini_failure(self, kind, code):
        self.calls.append(("failure", kind, code))

    def gemini_tokens(self, kind, prompt, completion):
        self.calls.append(("tokens", kind, prompt, completion))


def provider_for(fake, waits=None, **overrides):
    provider = support_provider_for(
        fake, KEY, waits, max_backoff=overrides.pop("max_backoff", 3.0), **overrides
    )
    provider.observer = RecordingObserver()
    return provider


def conversation():
    return [
        types.Content(role="user", parts=[types.Part(text="How do I deploy?")]),
        types.Content(role="model", parts=[types.Part(text="With make space [1].")]),
        types.Content(role="user", parts=[types.Part(text="Et sur Hugging Face, ça marche ?")]),
    ]


def stream_calls(fake):
    return [r for r in fake.requests if r.method_name == "streamGenerateContent"]


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_request_is_the_one_google_genai_sends(fake):
    provider = provider_for(fake)
    assert "".join(provider.stream(conversation(), system_instruction="Be grounded.", max_output_tokens=512))
    config = types.GenerateContentConfig(
        system_instruction="Be grounded.", temperature=0.2, max_output_tokens=512
    )
    for _ in provider.client.models.generate_content_stream(
        model="gemini-3.5-flash", contents=conversation(), config=config
    ):
        pass
    ours, sdks = stream_calls(fake)
    assert (ours.method, ours.path, ours.query) == (sdks.method, sdks.path, sdks.query)
    # Same headers in the same order, the key in x-goog-api-key only, and the same body length.
    assert list(ours.headers.items()) == list(sdks.headers.items())
    assert ours.headers["x-goog-api-key"] == KEY and KEY not in ours.path + ours.query
    assert ours.body == sdks.body


def test_the_query_embedding_request_is_the_one_google_genai_sends(fake):
    provider = provider_for(fake)
    vector = provider.embed_query("How do I deploy to Spaces?")
    config = types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=provider.dim)
    sdk = provider.client.models.embed_content(
        model=provider.model, contents=["How do I deploy to Spaces?"], config=config
    )
    ours, sdks = [r for r in fake.requests if r.method_name == "batchEmbedContents"]
    assert (ours.method, ours.path, ours.query) == (sdks.method, sdks.path, sdks.query)
    assert list(ours.headers.items()) == list(sdks.headers.items())
    assert ours.body == sdks.body
    norm = sum(v * v for v in sdk.embeddings[0].values) ** 0.5
    assert vector == pytest.approx([v / norm for v in sdk.embeddings[0].values])


def test_query_embedding_failures_are_retried_then_given_the_readers_code(fake):
    provider = provider_for(fake)
    fake.fail_next(1, 429, method="batchEmbedContents", retry_delay="0.01s")
    assert len(provider.embed_query("sidebar")) == provider.dim  # retried once
    assert [c for c in provider.observer.calls if c[0] == "call"] == [
        ("call", "embedding", "429"),
        ("call", "embedding", "ok"),
    ]
    fake.fail_next(10, 503, method="batchEmbedContents")
    with pytest.raises(AnswerUnavailable) as failure:
        provider.embed_query("sidebar")
    assert failure.value.code == "model_unavailable"


def test_a_stream_gives_the_text_in_order_then_usage_and_finish_reason(fake):
    fake.reply_with("one two three four five")
    fake.chunk_words = 2
    provider = provider_for(fake)
    stream = provider.stream(
        [types.Content(role="user", parts=[types.Part(text="q")])], system_instruction="s"
    )
    assert list(stream) == ["one two ", "three four ", "five"]
    # The fake counts prompt words (question + system instruction) and answer tokens.
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (2, 5)
    assert stream.finish_reason == "STOP"
    assert provider.observer.calls == [("call", "answer", "ok"), ("tokens", "answer", 2, 5)]
    assert provider.breaker.consecutive_failures == 0


@pytest.mark.parametrize(
    ("failure", "expected_wait"),
    [
        (dict(status=429, retry_delay="2s"), 2.0),  # RetryInfo in the body
        (dict(status=503, retry_delay=None, retry_after=2), 2.0),  # Retry-After header
        (dict(status=500, retry_delay=None), 0.01),  # no hint: the first exponential step
    ],
    ids=["429-retry-info", "503-retry-after", "500"],
)
def test_failures_before_the_first_token_are_retried(fake, failure, expected_wait):
    fake.fail_next(1, method="streamGenerateContent", **failure)
    fake.reply_with("after the retry")
    waits = []
    provider = provider_for(fake, waits)
    stream = provider.stream(conversation(), system_instruction="s")
    assert "".join(stream) == "after the retry"
    assert len(stream_calls(fake)) == 2 and len(waits) == 1
    assert expected_wait * 0.9 <= waits[0] <= expected_wait * 1.1  # ± jitter
    code = str(failure["status"])
    assert provider.observer.calls[:2] == [("call", "answer", code), ("call", "answer", "ok")]


def test_failures_that_persist_give_the_readers_code_and_retry_after(fake):
    fake.fail_next(3, 503, method="streamGenerateContent", retry_delay=None, retry_after=1)
    provider = provider_for(fake)
    with pytest.raises(AnswerUnavailable) as info:
        provider.stream(conversation(), system_instruction="s")
    assert (info.value.code, info.value.retry_after) == ("model_unavailable", 1)
    assert len(stream_calls(fake)) == 3
    assert provider.observer.calls[-1] == ("failure", "answer", "model_unavailable")
    assert provider.breaker.consecutive_failures == 1


def test_an_error_event_mid_stream_ends_the_answer_without_a_retry(fake):
    fake.reply_with("one two three four")
    fake.script([{"text": "one two three four", "error_after_events": 2, "error_status": 500}])
    provider = provider_for(fake)
    stream = provider.stream(conversation(), system_instruction="s")
    pieces = []
    with pytest.raises(AnswerUnavailable) as info:
        for piece in stream:
            pieces.append(piece)
    assert pieces == ["one ", "two "] and info.value.code == "model_unavailable"
    assert len(stream_calls(fake)) == 1
    assert ("failure", "answer", "model_unavailable") in provider.observer.calls


def test_a_dropped_stream_is_reported_as_interrupted(fake):
    fake.reply_with("one two three four")
    fake.drop_after_events = 1
    stream = provider_for(fake).stream(conversation(), system_instruction="s")
    assert next(stream) == "one "
    with pytest.raises(AnswerUnavailable) as info:
        next(stream)
    assert info.value.code == "stream_interrupted"


def test_closing_the_stream_abandons_the_upstream_request(fake):
    fake.reply_with(LONG_ANSWER)
    fake.tokens_per_second = 100  # 2 s of answer: far from done when the reader leaves
    provider = provider_for(fake)
    stream = provider.stream(conversation(), system_instruction="s")
    assert next(stream) == "word0 "
    stream.close()
    assert wait_for(lambda: fake.abandoned_streams == 1), "the fake kept streaming to a closed connection"
    assert provider.observer.calls[-1][:2] == ("tokens", "answer")  # usage reported once, as far as known
    # The pool is still usable afterwards: the next answer opens a fresh connection.
    fake.tokens_per_second = 0
    fake.reply_with("again")
    assert "".join(provider.stream(conversation(), system_instruction="s")) == "again"


def test_a_slow_first_event_times_out_after_the_retries(fake):
    fake.first_token_delay = 1.0
    with pytest.raises(AnswerUnavailable) as info:
        provider_for(fake, timeout_seconds=0.2, max_attempts=2).stream(conversation(), system_instruction="s")
    assert info.value.code == "timeout"
    assert len(stream_calls(fake)) == 2


def test_gemini_unreachable_is_retried_then_reported_as_unavailable(fake):
    provider = provider_for(fake, max_attempts=2)
    fake.stop()  # nothing listens on its port any more: connections are refused
    waits = []
    provider._sleep = waits.append
    for call in (
        lambda: provider.stream(conversation(), system_instruction="s"),
        lambda: provider.embed_query("q"),
    ):
        with pytest.raises(AnswerUnavailable) as info:
            call()
        assert info.value.code == "model_unavailable"
    assert len(waits) == 2  # one retry each


def test_the_key_is_never_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, 429, retry_delay="0.01s")
    assert "".join(provider_for(fake).stream(conversation(), system_instruction="s"))
    with pytest.raises(AnswerUnavailable):
        provider_for(fake, api_key="AIza-a-key-that-was-revoked-0004").stream(
            conversation(), system_instruction="s"
        )
    assert caplog.records and KEY not in caplog.text and "revoked-0004" not in caplog.text
