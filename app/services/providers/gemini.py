"""Google Gemini: one HTTP client per process, shared by threads; `google-genai` for all but the stream.

Streamed answers are read straight off the wire, not through the SDK. The SDK turns every SSE
event of `streamGenerateContent` into a `GenerateContentResponse` (json.loads, json.dumps,
json.loads again, then a pydantic model with its converters), about 0.25 ms of CPU per event
on a quiet thread and more under load; an answer has 20-40 events, and that was the largest
part of the service's CPU per answer. Here the same request goes out on the same httpx2 client
(the SDK is handed that client, so embeddings, the follow-up rewrite and the stream share one
connection pool), each `data:` line is parsed with json.loads, and only
candidates[0].content.parts[*].text, finishReason and usageMetadata are read. Measured side by side, same process setup (bench/README.md, "CPU per answer"): one
thread reading a 40-event answer, 9.9 ms of CPU through the SDK, 1.8 ms here (250 -> 44 us per
event, `python -m bench.gemini_stream`); the service in a burst of 100 chats (`bench.load
--variants current,sdk-stream`), 34-51 ms -> 21-31 ms of CPU per answer, on a loaded machine.
The request is byte for byte the SDK's (URL, headers, JSON body; a test compares them on the
fake's records), and HTTP errors become the SDK's own `errors.APIError` classes through its
public `raise_for_response`/`raise_error`, so retries and error codes are one code path.
Everything else (embeddings, the non-streamed rewrite call) stays on `google-genai`.

The SDK has no timeout and no retries by default, and when retries are switched on it ignores
the server's RetryInfo / Retry-After. So this module sets an explicit timeout and retries
itself: 429, 500, 503 and timeouts, with exponential backoff that honours the server's delay up
to a cap, and — for answers — only *before* the first token reaches the reader (after that a
retry would repeat text the reader already has).

Failures leave as `AnswerUnavailable` with a code the API can pass on; never the upstream
message, which can quote the request.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import httpx2
from google import genai
from google.genai import errors, types
from google.genai import version as genai_version

from app.services.answering.base import AnswerUnavailable, Usage
from app.services.observer import NULL_OBSERVER, Observer

log = logging.getLogger(__name__)

MAX_EMBED_BATCH = 100  # the API's limit on batchEmbedContents entries
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"  # the SDK's, for the Developer API
API_VERSION = "v1"  # the SDK's default in 3.x (2.x used v1beta): the stream goes where the SDK would
_RETRYABLE_STATUS = {429, 500, 502, 503, 504}

# Tuning, not settings: nothing here differs between deployments, and tests change them directly.
# The index's vector size: one of the sizes Google recommends for gemini-embedding-001 (768, 1536,
# 3072), a quarter of the largest one's memory. A change means a full re-index, a code change.
EMBEDDING_DIM = 768
# Per connect/read, not per answer (the SDK has no timeout of its own): long enough for Gemini's
# slowest first token, short enough to free a thread well before gunicorn's timeout.
TIMEOUT_SECONDS = 30.0
# Tries before the first token, the first included: two retries ride out a blip; more would keep
# the reader staring at nothing when Gemini is really down (the fallback answers instead).
MAX_ATTEMPTS = 3
# The longest single wait between tries. When Gemini asks for more (RetryInfo), the reader gets
# 429/503 with that Retry-After at once rather than a silent wait.
MAX_RETRY_WAIT_SECONDS = 8.0
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


class StreamPiece(NamedTuple):
    """What the service reads from one streamed event."""

    text: str
    usage: tuple[int | None, int | None] | None  # (prompt, completion) tokens, if the event has them
    finish_reason: str | None


class GeminiStream:
    """The pieces of one streamed answer; `usage` is filled in as the events report it."""

    def __init__(self, first: StreamPiece | None, pieces: Iterator[StreamPiece], provider: GeminiProvider) -> None:
        self.usage = Usage()
        self.finish_reason: str | None = None  # STOP, MAX_TOKENS, SAFETY... once Gemini says it
        self._pending = first.text if first is not None and first.text else None
        self._pieces = pieces
        self._provider = provider
        self._done = False
        self._usage_reported = False
        if first is not None:
            self._record(first)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._pending is not None:
            text, self._pending = self._pending, None
            return text
        while not self._done:
            try:
                piece = next(self._pieces)
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
            self._record(piece)
            if piece.text:
                return piece.text
        raise StopIteration

    def close(self) -> None:
        """Abandon the answer: closing the event generator closes the HTTP response (and its connection)."""
        self._done = True
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        self._report_usage()

    def _report_usage(self) -> None:
        # Once per answer, with what Gemini reported so far (a closed stream may lack counts).
        if not self._usage_reported:
            self._usage_reported = True
            self._provider.observer.gemini_tokens("answer", self.usage.prompt_tokens, self.usage.completion_tokens)

    def _record(self, piece: StreamPiece) -> None:
        if piece.usage is not None:
            self.usage.prompt_tokens, self.usage.completion_tokens = piece.usage
        if piece.finish_reason is not None:
            self.finish_reason = piece.finish_reason


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
        # One pool for the SDK's calls and the streams read here (the SDK is handed this client).
        self.http = httpx2.Client(
            timeout=config.timeout_seconds,
            limits=httpx2.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections),
        )
        http_options = types.HttpOptions(timeout=int(config.timeout_seconds * 1000), httpx_client=self.http)
        if config.base_url:
            http_options.base_url = config.base_url
        self.client = genai.Client(api_key=config.api_key, http_options=http_options)
        self._stream_url, self._stream_headers = _stream_request_target(config)

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
        body = _stream_body(contents, system_instruction, temperature, max_output_tokens)

        def start() -> tuple[StreamPiece | None, Iterator[StreamPiece]]:
            pieces = self._stream_pieces(body)
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

    def _stream_pieces(self, body: bytes) -> Iterator[StreamPiece]:
        """POST streamGenerateContent?alt=sse and yield one piece per SSE event.

        A non-200 answer raises the SDK's ClientError/ServerError (its body read), an error event
        inside a 200 stream likewise; transport failures raise httpx2's exceptions. Closing the
        generator closes the response: an unfinished body is not reusable, so httpx2 drops the
        connection and Gemini stops generating.
        """
        request = self.http.build_request(
            "POST", self._stream_url, content=body, headers=self._stream_headers, timeout=self.config.timeout_seconds
        )
        response = self.http.send(request, stream=True)
        try:
            errors.APIError.raise_for_response(response)
            data: list[str] = []
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                elif not line and data:
                    yield _piece(json.loads("\n".join(data)), response)
                    data = []
                # Anything else (comments, event:/id: fields) is not Gemini's; SSE says skip it.
            if data:
                yield _piece(json.loads("\n".join(data)), response)
        finally:
            response.close()

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



def _stream_request_target(config: GeminiConfig) -> tuple[str, dict[str, str]]:
    """The URL and headers google-genai would send for streamGenerateContent (its 3.x defaults).

    The key travels only in x-goog-api-key, as with the SDK; these headers are never logged.
    """
    model = config.model if config.model.startswith(("models/", "tunedModels/")) else f"models/{config.model}"
    # GOOGLE_GEMINI_BASE_URL: the SDK's own fallback when no base URL is given, honoured alike.
    base = (config.base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{API_VERSION}/{model}:streamGenerateContent?alt=sse"
    label = f"google-genai-sdk/{genai_version.__version__} gl-python/{sys.version.split()[0]}"
    headers = {
        "Content-Type": "application/json",
        "x-goog-api-key": config.api_key,
        "user-agent": label,
        "x-goog-api-client": label,
    }
    if config.timeout_seconds:
        headers["X-Server-Timeout"] = str(math.ceil(config.timeout_seconds))
    return url, headers


def _stream_body(
    contents: Sequence[types.Content | dict[str, Any]], system_instruction: str, temperature: float, max_output_tokens: int
) -> bytes:
    """The JSON body the SDK sends for these contents and this config (json.dumps' default format)."""
    body: dict[str, Any] = {
        "contents": [
            c if isinstance(c, dict) else c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in contents
        ]
    }
    if system_instruction:
        body["systemInstruction"] = {"parts": [{"text": system_instruction}], "role": "user"}
    body["generationConfig"] = {"temperature": temperature, "maxOutputTokens": max_output_tokens}
    return json.dumps(body).encode()


def _piece(event: Any, response: httpx2.Response) -> StreamPiece:
    """candidates[0]'s text (thought parts excluded, as the SDK's `.text`), finishReason, usage."""
    if not isinstance(event, dict):
        raise ValueError("a streamed event is not a JSON object")
    if "error" in event and "candidates" not in event:
        error = event["error"] if isinstance(event["error"], dict) else {}
        code = error.get("code")
        errors.APIError.raise_error(code if isinstance(code, int) else 500, event, response)
    text = ""
    finish_reason = None
    candidates = event.get("candidates")
    if candidates:
        candidate = candidates[0]
        finish_reason = candidate.get("finishReason")
        parts = (candidate.get("content") or {}).get("parts") or ()
        text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))
    usage = event.get("usageMetadata")
    counts = None if usage is None else (usage.get("promptTokenCount"), usage.get("candidatesTokenCount"))
    return StreamPiece(text, counts, finish_reason)

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
