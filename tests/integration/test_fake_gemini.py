"""Drive the real google-genai SDK against FakeGemini to prove wire fidelity and every knob.

Timing assertions are deliberately loose (the machine is noisy): they check that a
delay happened and that things did not run serially, not exact latencies.
"""

from __future__ import annotations

import math
import threading
import time

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_server import (
    MAX_EMBED_BATCH,
    Answer,
    Fail,
    FakeGemini,
    FakeGeminiProcess,
    default_answer,
    fake_embedding,
)

API_KEY = "test-key"
CHAT_MODEL = "gemini-3.5-flash"
EMBED_MODEL = "gemini-embedding-001"


@pytest.fixture
def fake():
    """A running in-process fake, stopped after the test."""
    with FakeGemini(api_key=API_KEY) as server:
        yield server


def make_client(fake: FakeGemini, api_key: str = API_KEY, **http_options) -> genai.Client:
    """A real SDK client pointed at the fake."""
    return genai.Client(
        api_key=api_key, http_options=types.HttpOptions(base_url=fake.base_url, **http_options)
    )


@pytest.fixture
def genai_client(fake):
    """An SDK client for the ``fake`` fixture with the SDK's defaults (v1, no retries, no timeout).

    Not named ``client``: tests/conftest.py already uses that name for the Flask test client.
    """
    with make_client(fake) as sdk_client:
        yield sdk_client


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_generate_content_answers_default_text_with_usage(fake, genai_client):
    """Non-stream call: default answer derived from the last user text, STOP and usage counts."""
    response = genai_client.models.generate_content(
        model=CHAT_MODEL, contents="What is the capital of France?"
    )

    assert response.text == default_answer("What is the capital of France?", 1)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.prompt_token_count == 6
    assert usage.candidates_token_count == len(response.text.split())
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == CHAT_MODEL


def test_generate_content_applies_first_token_delay_as_latency(fake, genai_client):
    """Non-stream calls wait ``first_token_delay`` before answering."""
    fake.first_token_delay = 0.4
    started = time.monotonic()
    genai_client.models.generate_content(model=CHAT_MODEL, contents="hi")
    assert 0.35 <= time.monotonic() - started < 3.0


def test_stream_yields_chunks_in_order_with_pacing(fake, genai_client):
    """SSE chunks arrive in order, chunk_words per event, first after first_token_delay, then paced."""
    fake.reply_with("one two three four five six seven eight")
    fake.first_token_delay = 0.4
    fake.tokens_per_second = 20  # 2 words per event -> 0.1 s between events
    fake.chunk_words = 2

    started = time.monotonic()
    arrivals, chunks = [], []
    for chunk in genai_client.models.generate_content_stream(model=CHAT_MODEL, contents="count to eight"):
        arrivals.append(time.monotonic() - started)
        chunks.append(chunk)

    assert [c.text for c in chunks] == ["one two ", "three four ", "five six ", "seven eight"]
    assert 0.35 <= arrivals[0] < 3.0
    assert arrivals[-1] - arrivals[0] >= 0.25  # three 0.1 s gaps, minus slack
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata.candidates_token_count == 8
    assert chunks[-1].usage_metadata.prompt_token_count == 3
    request = fake.last_request
    assert (request.method_name, request.query) == ("streamGenerateContent", "alt=sse")


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_both_api_versions_are_served(fake, api_version):
    """The SDK's default /v1 and an explicit /v1beta both work and are recorded as such."""
    with make_client(fake, api_version=api_version) as sdk_client:
        assert sdk_client.models.generate_content(model=CHAT_MODEL, contents="hi").text
        streamed = "".join(
            c.text for c in sdk_client.models.generate_content_stream(model=CHAT_MODEL, contents="hi")
        )
        assert streamed
    assert [r.api_version for r in fake.requests] == [api_version, api_version]
    assert fake.requests[0].path == f"/{api_version}/models/{CHAT_MODEL}:generateContent"


def test_base_url_path_prefix_is_accepted(fake):
    """A path in base_url is kept as a prefix by the SDK and accepted by the fake."""
    with genai.Client(
        api_key=API_KEY, http_options=types.HttpOptions(base_url=fake.base_url + "/proxy/")
    ) as sdk_client:
        sdk_client.models.generate_content(model=CHAT_MODEL, contents="hi")
    assert fake.last_request.path == f"/proxy/v1/models/{CHAT_MODEL}:generateContent"


def test_records_system_instruction_roles_config_and_key(fake, genai_client):
    """The request log exposes what the app sent: system instruction, turns, generationConfig, key header."""
    contents = [
        types.Content(role="user", parts=[types.Part(text="first question")]),
        types.Content(role="model", parts=[types.Part(text="first answer")]),
        types.Content(role="user", parts=[types.Part(text="follow-up question")]),
    ]
    config = types.GenerateContentConfig(
        system_instruction="You are terse.", temperature=0.2, max_output_tokens=256
    )

    response = genai_client.models.generate_content(model=CHAT_MODEL, contents=contents, config=config)

    assert response.text.startswith("Fake answer to: follow-up question")
    body = fake.last_request.body
    assert body["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 256}
    assert fake.last_request.headers["x-goog-api-key"] == API_KEY
    assert fake.last_request.headers["content-type"] == "application/json"


def test_embeddings_batch_of_100_returns_100_vectors_of_requested_dimension(fake, genai_client):
    """One vector per text, in order, each outputDimensionality long and equal to fake_embedding()."""
    texts = [f"document number {i}" for i in range(MAX_EMBED_BATCH)]
    response = genai_client.models.embed_content(
        model=EMBED_MODEL, contents=texts, config=types.EmbedContentConfig(output_dimensionality=768)
    )

    assert len(response.embeddings) == 100
    assert all(len(e.values) == 768 for e in response.embeddings)
    assert response.embeddings[42].values == fake_embedding("document number 42", 768)
    assert len(fake.last_request.body["requests"]) == 100


def test_embeddings_default_dimension_is_3072(fake, genai_client):
    """Without outputDimensionality the vectors are 3072 long."""
    response = genai_client.models.embed_content(model=EMBED_MODEL, contents="hello")
    assert len(response.embeddings[0].values) == 3072


def test_embeddings_batch_of_101_is_rejected_with_400(fake, genai_client):
    """The SDK does not split batches; the fake enforces the 100-entry cap like the service."""
    with pytest.raises(errors.ClientError) as caught:
        genai_client.models.embed_content(model=EMBED_MODEL, contents=[f"t{i}" for i in range(101)])
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert "at most 100 requests can be in one batch" in caught.value.message
    assert len(fake.last_request.body["requests"]) == 101


def test_a_plugged_in_embedder_answers_batch_embed_contents(genai_client):
    """Benchmarks plug a real model in: its vectors, fitted to the requested size, reach the SDK."""
    seen = []

    def embedder(texts):
        seen.append(list(texts))
        return [[3.0, 4.0] if "sidebar" in text else [0.0, 1.0, 0.0, 0.0] for text in texts]

    with FakeGemini(api_key=API_KEY, embedder=embedder) as server:
        client = make_client(server)
        small = client.models.embed_content(
            model=EMBED_MODEL,
            contents=["the sidebar", "a blog"],
            config=types.EmbedContentConfig(output_dimensionality=3),
        )
        cut = client.models.embed_content(
            model=EMBED_MODEL, contents=["a blog"], config=types.EmbedContentConfig(output_dimensionality=2)
        )
    assert seen == [["the sidebar", "a blog"], ["a blog"]]
    assert [e.values for e in small.embeddings] == [[3.0, 4.0, 0.0], [0.0, 1.0, 0.0]]  # padded with zeros
    assert cut.embeddings[0].values == [0.0, 1.0]  # cut to size, still unit length


def test_fake_embedding_ranks_texts_sharing_words_higher():
    """Hashed bag-of-words: overlap in words means higher cosine, and vectors are unit length."""
    query = fake_embedding("how do I reset my password", 768)
    related = fake_embedding("Password reset instructions for your account", 768)
    unrelated = fake_embedding("quarterly revenue grew in the northern region", 768)

    assert cosine(query, related) > cosine(query, unrelated) + 0.2
    assert math.isclose(sum(v * v for v in query), 1.0, abs_tol=1e-4)
    assert fake_embedding("Same text", 64) == fake_embedding("same TEXT", 64)


def test_429_raises_client_error_with_retry_info_and_retry_after(fake, genai_client):
    """429 carries QuotaFailure + RetryInfo in e.details and the optional Retry-After header."""
    fake.fail_next(1, 429, retry_delay="12s", retry_after=12)

    with pytest.raises(errors.ClientError) as caught:
        genai_client.models.generate_content(model=CHAT_MODEL, contents="hi")

    error = caught.value
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    detail_types = [d["@type"] for d in error.details["error"]["details"]]
    assert detail_types == [
        "type.googleapis.com/google.rpc.QuotaFailure",
        "type.googleapis.com/google.rpc.RetryInfo",
    ]
    assert error.details["error"]["details"][1]["retryDelay"] == "12s"
    assert error.response.headers["retry-after"] == "12"


@pytest.mark.parametrize(
    ("status", "status_name", "exception"),
    [
        (400, "INVALID_ARGUMENT", errors.ClientError),
        (403, "PERMISSION_DENIED", errors.ClientError),
        (404, "NOT_FOUND", errors.ClientError),
        (500, "INTERNAL", errors.ServerError),
        (503, "UNAVAILABLE", errors.ServerError),
    ],
)
def test_error_statuses_map_to_sdk_exceptions(fake, genai_client, status, status_name, exception):
    """Each injected status reaches the SDK as the documented exception class, streaming or not."""
    fake.fail_next(2, status)
    with pytest.raises(exception) as caught:
        genai_client.models.generate_content(model=CHAT_MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (status, status_name)
    with pytest.raises(exception):
        next(iter(genai_client.models.generate_content_stream(model=CHAT_MODEL, contents="hi")))
    assert len(fake.requests) == 2


def test_no_retries_by_default(fake, genai_client):
    """SDK 3.6.1 makes exactly one request per call unless HttpRetryOptions is set."""
    fake.fail_next(5, 503)
    with pytest.raises(errors.ServerError):
        genai_client.models.generate_content(model=CHAT_MODEL, contents="hi")
    assert len(fake.requests) == 1


def test_retry_options_make_exactly_three_attempts_on_503(fake):
    """attempts=3 on a persistent 503 gives 3 recorded requests, then ServerError."""
    fake.fail_next(10, 503)
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05)
    with make_client(fake, retry_options=retry) as sdk_client:
        with pytest.raises(errors.ServerError):
            sdk_client.models.generate_content(model=CHAT_MODEL, contents="hi")
    assert len(fake.requests) == 3


def test_retry_recovers_when_failures_run_out(fake):
    """Two 503s then success: the SDK's third attempt returns the answer."""
    fake.fail_next(2, 503)
    fake.reply_with("recovered")
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05)
    with make_client(fake, retry_options=retry) as sdk_client:
        assert sdk_client.models.generate_content(model=CHAT_MODEL, contents="hi").text == "recovered"
    assert len(fake.requests) == 3


def test_fail_next_can_target_one_method(fake, genai_client):
    """A method-scoped failure leaves other methods alone until it is consumed."""
    fake.fail_next(1, 429, method="batchEmbedContents")
    assert genai_client.models.generate_content(model=CHAT_MODEL, contents="hi").text
    with pytest.raises(errors.ClientError):
        genai_client.models.embed_content(model=EMBED_MODEL, contents="x")
    assert genai_client.models.embed_content(model=EMBED_MODEL, contents="x").embeddings


def test_mid_stream_error_event_raises_after_earlier_chunks(fake, genai_client):
    """An error event after k chunks: those chunks are yielded, then ServerError (not retried)."""
    fake.reply_with("alpha beta gamma delta")
    fake.error_after_events = 2
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in genai_client.models.generate_content_stream(model=CHAT_MODEL, contents="hi"):
            received.append(chunk.text)
    assert received == ["alpha ", "beta "]
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")


def test_dropped_stream_raises_httpx2_error_after_earlier_chunks(fake, genai_client):
    """Cutting the connection mid-body surfaces as a raw httpx2 error, not a genai error."""
    fake.reply_with("alpha beta gamma delta")
    fake.drop_after_events = 2
    received = []
    with pytest.raises(httpx2.HTTPError) as caught:
        for chunk in genai_client.models.generate_content_stream(model=CHAT_MODEL, contents="hi"):
            received.append(chunk.text)
    assert received == ["alpha ", "beta "]
    assert isinstance(caught.value, (httpx2.RemoteProtocolError, httpx2.ReadError))


def test_slow_first_token_hits_sdk_timeout_as_read_timeout(fake):
    """HttpOptions(timeout=ms) is a per-read limit; a long first-token delay raises httpx2.ReadTimeout."""
    fake.first_token_delay = 5.0
    started = time.monotonic()
    with make_client(fake, timeout=300) as sdk_client:
        with pytest.raises(httpx2.TimeoutException) as caught:
            next(iter(sdk_client.models.generate_content_stream(model=CHAT_MODEL, contents="hi")))
    assert isinstance(caught.value, httpx2.ReadTimeout)
    assert time.monotonic() - started < 3.0
    assert fake.last_request.headers["x-server-timeout"] == "1"


def test_wrong_key_gets_api_key_invalid(fake):
    """A key other than the fake's is answered 400 INVALID_ARGUMENT with reason API_KEY_INVALID."""
    with make_client(fake, api_key="wrong-key") as sdk_client:
        with pytest.raises(errors.ClientError) as caught:
            sdk_client.models.generate_content(model=CHAT_MODEL, contents="hi")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert fake.last_request.headers["x-goog-api-key"] == "wrong-key"


def test_unknown_routes_and_bad_stream_query(fake):
    """Paths the SDK never sends: unknown method or path -> 404 envelope; stream without alt=sse -> 400."""
    headers = {"x-goog-api-key": API_KEY}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with httpx2.Client(base_url=fake.base_url) as http:
        unknown_method = http.post(f"/v1/models/{CHAT_MODEL}:countTokens", json=body, headers=headers)
        unknown_path = http.post("/v2/whatever", json=body, headers=headers)
        no_sse = http.post(f"/v1/models/{CHAT_MODEL}:streamGenerateContent", json=body, headers=headers)
    assert unknown_method.status_code == unknown_path.status_code == 404
    assert unknown_method.json()["error"]["status"] == "NOT_FOUND"
    assert no_sse.status_code == 400
    assert [r.method_name for r in fake.requests] == ["countTokens", None, "streamGenerateContent"]


def test_script_is_consumed_in_order_then_falls_back(fake, genai_client):
    """Per-call script: texts, an HTTP failure and a stream fault, then the default answer."""
    fake.script(["scripted one", Fail(500), Answer(text="a b c", drop_after_events=1)])

    assert genai_client.models.generate_content(model=CHAT_MODEL, contents="q").text == "scripted one"
    with pytest.raises(errors.ServerError):
        genai_client.models.generate_content(model=CHAT_MODEL, contents="q")
    with pytest.raises(httpx2.HTTPError):
        list(genai_client.models.generate_content_stream(model=CHAT_MODEL, contents="q"))
    assert genai_client.models.generate_content(model=CHAT_MODEL, contents="q").text == default_answer("q", 3)


def test_reset_clears_requests_script_failures_and_knobs(fake, genai_client):
    """reset() returns the fake to its freshly started state."""
    fake.reply_with("fixed")
    fake.first_token_delay = 0.2
    fake.fail_next(3, 503)
    fake.script(["scripted"])
    with pytest.raises(errors.ServerError):
        genai_client.models.generate_content(model=CHAT_MODEL, contents="q")

    fake.reset()

    assert fake.requests == []
    assert fake.knobs()["first_token_delay"] == 0.0
    assert genai_client.models.generate_content(model=CHAT_MODEL, contents="q").text == default_answer("q", 1)


def test_control_surface_configures_in_process_fake(fake, genai_client):
    """POST /_fake/config applies knobs and actions; bad keys are rejected with 400."""
    with httpx2.Client(base_url=fake.base_url) as http:
        ok = http.post(
            "/_fake/config", json={"reply_text": "via config", "fail_next": {"n": 1, "status": 429}}
        )
        bad = http.post("/_fake/config", json={"no_such_knob": 1})
        assert ok.status_code == 200 and ok.json()["knobs"]["reply_text"] == "via config"
        assert bad.status_code == 400
        with pytest.raises(errors.ClientError):
            genai_client.models.generate_content(model=CHAT_MODEL, contents="q")
        assert genai_client.models.generate_content(model=CHAT_MODEL, contents="q").text == "via config"
        recorded = http.get("/_fake/requests").json()
    assert [r["method_name"] for r in recorded] == ["generateContent", "generateContent"]


def test_two_hundred_concurrent_streams_are_served_concurrently(fake):
    """200 streams with a 1 s first-token delay finish far faster than serially (200 s)."""
    fake.first_token_delay = 1.0
    fake.reply_with("concurrent reply")
    # httpx2's default pool allows 100 connections per client, so raise it for one shared client.
    limits = httpx2.Limits(max_connections=250, max_keepalive_connections=250)
    results: list[str] = []
    results_lock = threading.Lock()

    def stream_once(sdk_client: genai.Client) -> None:
        """Collect one full streamed answer."""
        text = "".join(
            c.text for c in sdk_client.models.generate_content_stream(model=CHAT_MODEL, contents="q")
        )
        with results_lock:
            results.append(text)

    started = time.monotonic()
    with make_client(fake, client_args={"limits": limits}) as sdk_client:
        threads = [threading.Thread(target=stream_once, args=(sdk_client,)) for _ in range(200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    elapsed = time.monotonic() - started

    assert results == ["concurrent reply"] * 200
    assert elapsed < 8.0
    assert len(fake.requests) == 200


def test_standalone_process_serves_and_exits_on_sigterm():
    """The CLI prints its URL, serves a paced stream, obeys /_fake/config, and exits 0 on SIGTERM."""
    process = FakeGeminiProcess(
        api_key="process-key", extra_args=("--first-token-delay", "0.2", "--chunk-words", "2")
    )
    with process:
        assert process.base_url.startswith("http://127.0.0.1:")
        process.configure(reply_text="from the process fake")
        with genai.Client(
            api_key="process-key", http_options=types.HttpOptions(base_url=process.base_url)
        ) as sdk_client:
            started = time.monotonic()
            chunks = [
                c.text for c in sdk_client.models.generate_content_stream(model=CHAT_MODEL, contents="q")
            ]
            assert time.monotonic() - started >= 0.15
        assert chunks == ["from the ", "process fake"]
        recorded = process.requests
        assert [r.method_name for r in recorded] == ["streamGenerateContent"]
        assert recorded[0].headers["x-goog-api-key"] == "process-key"
        process.reset()
        assert process.requests == []
        assert process.stop() == 0
