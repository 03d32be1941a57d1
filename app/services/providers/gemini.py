"""Google Gemini: one HTTP client per container, shared by threads; `google-genai` for all but the
two calls every reader's question makes (the stream and the query embedding).

Streamed answers are read straight off the wire (gemini_stream.py), not through the SDK. The SDK
turns every SSE event of `streamGenerateContent` into a `GenerateContentResponse` (json.loads,
json.dumps, json.loads again, then a pydantic model with its converters), about 0.25 ms of CPU
per event on a quiet thread and more under load; an answer has 20-40 events, and that was the
largest part of the service's CPU per answer. Here the same request goes out through urllib3's
pool (cheaper per event than httpx2's layers: gemini_stream.py), each `data:` line is parsed
with json.loads, and only candidates[0].content.parts[*].text, finishReason and usageMetadata
are read. Measured side by side, same process setup (bench/README.md, "CPU per answer"): one
thread reading a 40-event answer, 9.9 ms of CPU through the SDK, 1.8 ms here (250 -> 44 us per
event, `python -m bench.gemini_stream`); the service in a burst of 100 chats (`bench.load
--variants current,sdk-stream`), 34-51 ms -> 21-31 ms of CPU per answer, on a loaded machine.
The request is byte for byte the SDK's (URL, headers, JSON body; a test compares them on the
fake's records), and HTTP errors become the SDK's own `errors.APIError` classes through its
public `raise_error`, so retries and error codes are one code path.
The query embedding (one call per question) is sent and read the same way (a test compares it
with the SDK's too). The book's embeddings at ingestion and the non-streamed rewrite call stay on
`google-genai`.

The SDK has no timeout and no retries by default, and when retries are switched on it ignores
the server's RetryInfo / Retry-After. So this module sets an explicit timeout and retries
itself (what is retried, how long to wait, the circuit breaker: gemini_failures.py): 429, 500,
503 and timeouts, with exponential backoff that honours the server's delay up to a cap, and —
for answers — only *before* the first token reaches the reader (after that a retry would repeat
text the reader already has).

Failures leave as `AnswerUnavailable` with a code the API can pass on; never the upstream
message, which can quote the request.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from google import genai
from google.genai import types

from app.services.answering.base import AnswerUnavailable
from app.services.errors import ErrorCode
from app.services.observer import NULL_OBSERVER, Observer
from app.services.providers.gemini_failures import (
    CircuitBreaker,
    classify,
    describe,
    outcome_code,
    retry_decision,
)
from app.services.providers.gemini_stream import (
    GeminiStream,
    StreamPiece,
    connection_pool,
    model_path,
    post,
    read_pieces,
    request_target,
    stream_body,
    stream_request_target,
)

log = logging.getLogger(__name__)

MAX_EMBED_BATCH = 100  # the API's limit on batchEmbedContents entries
_T = TypeVar("_T")


@dataclass(frozen=True)
class GeminiConfig:
    """How to reach Gemini and how patient to be (the container fills the size, the timeout and
    the retries from app/tuning.py, where their reasons are)."""

    api_key: str = field(repr=False)  # never in a repr, a log line or a traceback
    model: str
    embedding_model: str
    embedding_dim: int
    timeout_seconds: float  # per connect/read: a stream may take longer in total
    max_attempts: int  # tries before the first token, the first included
    max_backoff: float  # the longest single wait; a server asking for more is not retried
    base_url: str | None = None
    initial_backoff: float = 0.5
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    max_connections: int = (
        256  # connections kept per pool; httpx2's default of 100 would queue the 101st stream
    )


class GeminiProvider:
    """Answers (streamed), short completions and embeddings, with timeouts and retries."""

    def __init__(self, config: GeminiConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.breaker = CircuitBreaker(config.breaker_threshold, config.breaker_cooldown)
        # Metrics hooks (calls by outcome, failures, tokens); the app sets its own.
        self.observer: Observer = NULL_OBSERVER
        self._sleep = sleep
        self._requests_lock = threading.Lock()
        self._embedding_requests = 0
        # The two calls of every question (stream, query embedding) use their own pool; the
        # SDK's calls (ingestion's embeddings, the follow-up rewrite) are handed this client.
        self.pool = connection_pool(config.max_connections, config.timeout_seconds)
        self.http = httpx2.Client(
            timeout=config.timeout_seconds,
            limits=httpx2.Limits(
                max_connections=config.max_connections, max_keepalive_connections=config.max_connections
            ),
        )
        http_options = types.HttpOptions(timeout=int(config.timeout_seconds * 1000), httpx_client=self.http)
        if config.base_url:
            http_options.base_url = config.base_url
        self.client = genai.Client(api_key=config.api_key, http_options=http_options)
        self._stream_url, self._stream_headers = stream_request_target(config)
        self._embed_url, self._embed_headers = request_target(
            config, config.embedding_model, "batchEmbedContents"
        )

    # --- answers ----------------------------------------------------------------------------
    def stream(
        self,
        contents: list[types.Content],
        *,
        system_instruction: str,
        temperature: float = 0.2,
        max_output_tokens: int = 1024,
    ) -> GeminiStream:
        """Start a streamed answer; returns once the first event has arrived (retrying before it)."""
        body = stream_body(contents, system_instruction, temperature, max_output_tokens)

        def start() -> tuple[StreamPiece | None, Iterator[StreamPiece]]:
            pieces = read_pieces(self.pool, self._stream_url, self._stream_headers, body)
            try:
                first = next(pieces)  # the request is sent lazily, on the first next()
            except StopIteration:
                return None, iter(())
            except BaseException:
                pieces.close()
                raise
            return first, pieces

        first, pieces = self._with_retries(start, what="answer")
        return GeminiStream(first, pieces, self)

    def complete(
        self, contents: list[types.Content], *, system_instruction: str, max_output_tokens: int = 128
    ) -> str:
        """A short, non-streamed completion (e.g. rewriting a follow-up question)."""
        config = types.GenerateContentConfig(
            system_instruction=system_instruction, temperature=0.0, max_output_tokens=max_output_tokens
        )
        response = self._with_retries(
            lambda: self.client.models.generate_content(
                model=self.config.model, contents=contents, config=config
            ),
            what="completion",
        )
        self.breaker.record_success()
        usage = getattr(response, "usage_metadata", None)
        if usage is not None:
            self.observer.gemini_tokens("completion", usage.prompt_token_count, usage.candidates_token_count)
        return (response.text or "").strip()

    # --- embeddings ----------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The embedding model (the ingester records it in the index)."""
        return self.config.embedding_model

    @property
    def dim(self) -> int:
        """The dense vector size."""
        return self.config.embedding_dim

    @property
    def requests_made(self) -> int:
        """Embedding requests sent so far (retries included)."""
        return self._embedding_requests

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in batches of at most 100, each batch retried on 429/503."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_EMBED_BATCH):
            batch = list(texts[start : start + MAX_EMBED_BATCH])
            vectors.extend(self._embed(batch, "RETRIEVAL_DOCUMENT"))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """The vector of a question: one call per reader's question, so sent and read here, like the
        stream, rather than through the SDK's request and response models (the same request, byte
        for byte; 2.1-2.5 -> 1.5 ms of CPU on a quiet thread, bench.cpu_parts)."""
        model = model_path(self.config.embedding_model)
        body = json.dumps(
            {
                "requests": [
                    {
                        "content": {"parts": [{"text": text}], "role": "user"},
                        "taskType": "RETRIEVAL_QUERY",
                        "outputDimensionality": self.config.embedding_dim,
                        "model": model,
                    }
                ]
            }
        ).encode()

        def call() -> list[Any]:
            with self._requests_lock:
                self._embedding_requests += 1
            response = post(self.pool, self._embed_url, self._embed_headers, body, stream=False)
            return json.loads(response.data).get("embeddings") or []

        embeddings = self._with_retries(call, what="embedding")
        self.breaker.record_success()
        values = (
            embeddings[0].get("values") if len(embeddings) == 1 and isinstance(embeddings[0], dict) else None
        )
        if not values:
            raise AnswerUnavailable(
                ErrorCode.EMBEDDING_FAILED, "The embedding service returned an unexpected answer."
            )
        return _unit(values)

    def _embed(self, texts: list[str], task_type: str) -> list[list[float]]:
        config = types.EmbedContentConfig(
            task_type=task_type, output_dimensionality=self.config.embedding_dim
        )

        def call() -> Any:
            with self._requests_lock:
                self._embedding_requests += 1
            return self.client.models.embed_content(
                model=self.config.embedding_model, contents=texts, config=config
            )

        response = self._with_retries(call, what="embedding")
        self.breaker.record_success()
        embeddings = response.embeddings or []
        if len(embeddings) != len(texts):
            raise AnswerUnavailable(
                ErrorCode.EMBEDDING_FAILED, "The embedding service returned an unexpected answer."
            )
        # Sizes below 3072 are not normalised by the API; cosine wants unit vectors anyway.
        return [_unit(list(e.values or [])) for e in embeddings]

    # --- retries and errors ---------------------------------------------------------------------
    def _with_retries(self, call: Callable[[], _T], *, what: str) -> _T:
        if not self.breaker.allow():
            self.observer.gemini_call(what, "circuit_open", 0.0)
            self.observer.gemini_failure(what, ErrorCode.MODEL_UNAVAILABLE)
            raise AnswerUnavailable(
                ErrorCode.MODEL_UNAVAILABLE,
                "The answering service is unavailable right now; please try again shortly.",
                retry_after=self.breaker.retry_after(),
            )
        attempt = 0
        while True:
            attempt += 1
            sent = time.perf_counter()
            try:
                result = call()
            except Exception as exc:
                self.observer.gemini_call(what, outcome_code(exc), time.perf_counter() - sent)
                retryable, server_delay = retry_decision(exc)
                # A server that asks for a longer pause than we may wait will not recover in time
                # for this reader: give up now and pass its delay on as Retry-After.
                too_long = server_delay is not None and server_delay > self.config.max_backoff
                if not retryable or too_long or attempt >= self.config.max_attempts:
                    self.breaker.record_failure()
                    log.warning("Gemini %s failed after %d attempt(s): %s", what, attempt, describe(exc))
                    failure = classify(exc, streaming=False)
                    self.observer.gemini_failure(what, failure.code)
                    raise failure from exc
                delay = self._backoff(attempt, server_delay)
                log.info("Gemini %s: %s, retrying in %.2fs", what, describe(exc), delay)
                self._sleep(delay)
            else:
                self.observer.gemini_call(what, "ok", time.perf_counter() - sent)
                return result

    def _backoff(self, attempt: int, server_delay: float | None) -> float:
        exponential: float = self.config.initial_backoff * (2 ** (attempt - 1))
        delay = max(exponential, server_delay or 0.0)
        return min(self.config.max_backoff, delay) * random.uniform(0.9, 1.1)


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector
