"""Google Gemini through the `google-genai` SDK: one client per process, shared by threads.

The SDK has no timeout and no retries by default, and when retries are switched on it ignores
the server's RetryInfo / Retry-After. So this module sets an explicit timeout and retries
itself: 429, 500, 503 and timeouts, with exponential backoff that honours the server's delay up
to a cap, and — for answers — only *before* the first token reaches the reader (after that a
retry would repeat text the reader already has).

Failures leave as `AnswerUnavailable` with a code the API can pass on; never the upstream
message, which can quote the request.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from google import genai
from google.genai import errors, types

from app.services.answering.base import AnswerUnavailable, Usage
from app.services.observer import NULL_OBSERVER, Observer

log = logging.getLogger(__name__)

MAX_EMBED_BATCH = 100  # the API's limit on batchEmbedContents entries
_RETRYABLE_STATUS = {429, 500, 502, 503, 504}
_T = TypeVar("_T")


@dataclass(frozen=True)
class GeminiConfig:
    """How to reach Gemini and how patient to be."""

    api_key: str = field(repr=False)  # never in a repr, a log line or a traceback
    model: str
    embedding_model: str
    embedding_dim: int
    base_url: str | None = None
    timeout_seconds: float = 30.0  # per connect/read: a stream may take longer in total
    max_attempts: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 8.0  # the longest single wait; a server asking for more is not retried
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    max_connections: int = 256  # httpx2's default of 100 would queue the 101st stream


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one trial through after `cooldown`.

    While open, calls fail at once: no quota is spent on an upstream that is down, and health can
    say "degraded" from this state without probing.
    """

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        """closed | open | half-open."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if time.monotonic() - self._opened_at >= self.cooldown else "open"

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def allow(self) -> bool:
        """May a call go out now?"""
        return self.state != "open"

    def record_success(self) -> None:
        """A call worked: close the breaker."""
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def record_failure(self) -> None:
        """A call failed after its retries."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._opened_at = time.monotonic()

    def retry_after(self) -> int:
        """Seconds until a trial call is allowed."""
        with self._lock:
            if self._opened_at is None:
                return 0
            return max(1, math.ceil(self.cooldown - (time.monotonic() - self._opened_at)))


class GeminiStream:
    """The pieces of one streamed answer; `usage` is filled in as the chunks report it."""

    def __init__(self, first_text: str | None, chunks: Iterator[Any], provider: GeminiProvider) -> None:
        self.usage = Usage()
        self._pending = first_text
        self._chunks = chunks
        self._provider = provider
        self._done = False
        self._usage_reported = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._pending is not None:
            text, self._pending = self._pending, None
            return text
        while not self._done:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                self._provider.breaker.record_success()
                self._report_usage()
                break
            except Exception as exc:  # noqa: BLE001 - classified below, never passed on raw
                self._done = True
                self._provider.breaker.record_failure()
                failure = self._provider.classify(exc, streaming=True)
                self._provider.observer.gemini_failure("answer", failure.code)
                self._report_usage()
                raise failure from exc
            self._record_usage(chunk)
            text = chunk.text
            if text:
                return text
        raise StopIteration

    def record_first(self, chunk: Any) -> None:
        """Take the usage of the chunk the provider read to start the stream."""
        self._record_usage(chunk)

    def close(self) -> None:
        """Abandon the answer: closing the SDK's generator closes the HTTP response."""
        self._done = True
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._report_usage()

    def _report_usage(self) -> None:
        # Once per answer, with what Gemini reported so far (a closed stream may lack counts).
        if not self._usage_reported:
            self._usage_reported = True
            self._provider.observer.gemini_tokens("answer", self.usage.prompt_tokens, self.usage.completion_tokens)

    def _record_usage(self, chunk: Any) -> None:
        usage = getattr(chunk, "usage_metadata", None)
        if usage is not None:
            self.usage.prompt_tokens = usage.prompt_token_count
            self.usage.completion_tokens = usage.candidates_token_count


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
        http_options = types.HttpOptions(
            timeout=int(config.timeout_seconds * 1000),
            client_args={
                "limits": httpx2.Limits(
                    max_connections=config.max_connections, max_keepalive_connections=config.max_connections
                )
            },
        )
        if config.base_url:
            http_options.base_url = config.base_url
        self.client = genai.Client(api_key=config.api_key, http_options=http_options)

    # --- answers ----------------------------------------------------------------------------
    def stream(
        self,
        contents: list[types.Content],
        *,
        system_instruction: str,
        temperature: float = 0.2,
        max_output_tokens: int = 1024,
    ) -> GeminiStream:
        """Start a streamed answer; returns once the first chunk has arrived (retrying before it)."""
        config = types.GenerateContentConfig(
            system_instruction=system_instruction,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
        )

        def start() -> tuple[Any, Iterator[Any]]:
            chunks = self.client.models.generate_content_stream(
                model=self.config.model, contents=contents, config=config
            )
            try:
                first = next(chunks)  # the request is sent lazily, on the first next()
            except StopIteration:
                return None, iter(())
            except BaseException:
                chunks.close()
                raise
            return first, chunks

        first, chunks = self._with_retries(start, what="answer")
        stream = GeminiStream(first.text if first is not None else None, chunks, self)
        if first is not None:
            stream.record_first(first)
        return stream

    def complete(self, contents: list[types.Content], *, system_instruction: str, max_output_tokens: int = 128) -> str:
        """A short, non-streamed completion (e.g. rewriting a follow-up question)."""
        config = types.GenerateContentConfig(
            system_instruction=system_instruction, temperature=0.0, max_output_tokens=max_output_tokens
        )
        response = self._with_retries(
            lambda: self.client.models.generate_content(model=self.config.model, contents=contents, config=config),
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

    def embed_documents(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> list[list[float]]:
        """One vector per text, in batches of at most 100, each batch retried on 429/503."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_EMBED_BATCH):
            batch = list(texts[start : start + MAX_EMBED_BATCH])
            vectors.extend(self._embed(batch, "RETRIEVAL_DOCUMENT"))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """The vector of a question."""
        return self._embed([text], "RETRIEVAL_QUERY")[0]

    def _embed(self, texts: list[str], task_type: str) -> list[list[float]]:
        config = types.EmbedContentConfig(task_type=task_type, output_dimensionality=self.config.embedding_dim)

        def call() -> Any:
            with self._requests_lock:
                self._embedding_requests += 1
            return self.client.models.embed_content(model=self.config.embedding_model, contents=texts, config=config)

        response = self._with_retries(call, what="embedding")
        self.breaker.record_success()
        embeddings = response.embeddings or []
        if len(embeddings) != len(texts):
            raise AnswerUnavailable("embedding_failed", "The embedding service returned an unexpected answer.")
        # Sizes below 3072 are not normalised by the API; cosine wants unit vectors anyway.
        return [_unit(list(e.values or [])) for e in embeddings]

    # --- retries and errors ---------------------------------------------------------------------
    def _with_retries(self, call: Callable[[], _T], *, what: str) -> _T:
        if not self.breaker.allow():
            self.observer.gemini_call(what, "circuit_open", 0.0)
            self.observer.gemini_failure(what, "model_unavailable")
            raise AnswerUnavailable(
                "model_unavailable",
                "The answering service is unavailable right now; please try again shortly.",
                retry_after=self.breaker.retry_after(),
            )
        attempt = 0
        while True:
            attempt += 1
            sent = time.perf_counter()
            try:
                result = call()
            except Exception as exc:  # noqa: BLE001 - classified, retried or re-raised as ours
                self.observer.gemini_call(what, _outcome_code(exc), time.perf_counter() - sent)
                retryable, server_delay = _retry_decision(exc)
                # A server that asks for a longer pause than we may wait will not recover in time
                # for this reader: give up now and pass its delay on as Retry-After.
                too_long = server_delay is not None and server_delay > self.config.max_backoff
                if not retryable or too_long or attempt >= self.config.max_attempts:
                    self.breaker.record_failure()
                    log.warning(
                        "Gemini %s failed after %d attempt(s): %s", what, attempt, _describe(exc)
                    )
                    failure = self.classify(exc, streaming=False)
                    self.observer.gemini_failure(what, failure.code)
                    raise failure from exc
                delay = self._backoff(attempt, server_delay)
                log.info("Gemini %s: %s, retrying in %.2fs", what, _describe(exc), delay)
                self._sleep(delay)
            else:
                self.observer.gemini_call(what, "ok", time.perf_counter() - sent)
                return result

    def _backoff(self, attempt: int, server_delay: float | None) -> float:
        exponential = self.config.initial_backoff * (2 ** (attempt - 1))
        delay = max(exponential, server_delay or 0.0)
        return min(self.config.max_backoff, delay) * random.uniform(0.9, 1.1)

    def classify(self, exc: BaseException, *, streaming: bool) -> AnswerUnavailable:
        """Turn an SDK or transport exception into a failure the reader can be told about."""
        if isinstance(exc, AnswerUnavailable):
            return exc
        if isinstance(exc, errors.APIError):
            code = exc.code or 0
            _, server_delay = _retry_decision(exc)
            retry_after = math.ceil(server_delay) if server_delay else None
            if code == 429:
                return AnswerUnavailable(
                    "quota_exhausted",
                    "The assistant has used up its Gemini quota for now; please try again later.",
                    http_status=429,
                    retry_after=retry_after,
                )
            if code in (400, 401, 403, 404):
                log.error("Gemini rejected the request (HTTP %s): check GEMINI_API_KEY and GEMINI_MODEL", code)
                return AnswerUnavailable("model_misconfigured", "The answering service is misconfigured.")
            return AnswerUnavailable(
                "model_unavailable",
                "The answering service is unavailable right now; please try again shortly.",
                retry_after=retry_after,
            )
        if isinstance(exc, httpx2.TimeoutException):
            return AnswerUnavailable("timeout", "The answering service took too long to respond.")
        if streaming and isinstance(exc, httpx2.TransportError):
            return AnswerUnavailable("stream_interrupted", "The connection to the answering service was lost.")
        if isinstance(exc, httpx2.TransportError):
            return AnswerUnavailable("model_unavailable", "The answering service cannot be reached right now.")
        return AnswerUnavailable("model_error", "The answering service failed unexpectedly.")


def _retry_decision(exc: BaseException) -> tuple[bool, float | None]:
    """(retry?, the server's requested delay in seconds if it gave one)."""
    if isinstance(exc, errors.APIError):
        return (exc.code or 0) in _RETRYABLE_STATUS, _server_delay(exc)
    if isinstance(exc, (httpx2.TimeoutException, httpx2.ConnectError)):
        return True, None
    return False, None


def _server_delay(exc: errors.APIError) -> float | None:
    """RetryInfo.retryDelay ("7s", "0.5s") from the body, else the Retry-After header."""
    details = exc.details if isinstance(exc.details, dict) else {}
    for detail in (details.get("error") or {}).get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"([\d.]+)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    response = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    if header and header.strip().isdigit():
        return float(header.strip())
    return None


def _outcome_code(exc: BaseException) -> str:
    """A metric label for a failed attempt: the HTTP status, or the kind of transport failure."""
    if isinstance(exc, errors.APIError):
        return str(exc.code or "error")
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx2.TransportError):
        return "transport"
    return "error"


def _describe(exc: BaseException) -> str:
    """A log-safe description: class and status, never the message (it can echo the prompt)."""
    if isinstance(exc, errors.APIError):
        return f"{type(exc).__name__} {exc.code} {exc.status}"
    return type(exc).__name__


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector
