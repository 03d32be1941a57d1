"""Gemini's streamGenerateContent, read straight off the wire (see gemini.py for why not the SDK).

The request is byte for byte the SDK's (URL, headers in their order, JSON body; a test compares
them on the fake's records); each `data:` line is parsed with json.loads and only
candidates[0].content.parts[*].text, finishReason and usageMetadata are read. HTTP errors become
the SDK's own `errors.APIError` classes through its public `raise_error`, so retries and error
codes are one code path with the SDK's calls.

The two calls of every question (this stream and the query embedding) go through urllib3's
connection pool rather than the SDK's httpx2 client: reading a 40-event answer cost 3.5 ms of
CPU through httpx2 (its line, text, byte and h11 layers per event) and 1.9 ms through urllib3
(`python -m bench.gemini_stream`), the embedding call 1.40 against 1.17 ms (`bench.cpu_parts`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Generator, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import certifi
import urllib3
from google.genai import errors, types
from google.genai import version as genai_version

from app.services.answering.base import Usage
from app.services.observer import Observer
from app.services.providers.gemini_failures import CircuitBreaker, classify

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"  # the SDK's, for the Developer API
API_VERSION = "v1"  # the SDK's default in 3.x (2.x used v1beta): the stream goes where the SDK would


class StreamOwner(Protocol):
    """What a stream reports to: the provider's breaker and observer (read when used: the app
    sets the observer after the provider is built)."""

    breaker: CircuitBreaker
    observer: Observer


class StreamTarget(Protocol):
    """The parts of GeminiConfig the request needs (read only: GeminiConfig is frozen)."""

    @property
    def api_key(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def timeout_seconds(self) -> float: ...


class StreamPiece(NamedTuple):
    """What the service reads from one streamed event."""

    text: str
    usage: tuple[int | None, int | None] | None  # (prompt, completion) tokens, if the event has them
    finish_reason: str | None


class GeminiStream:
    """The pieces of one streamed answer; `usage` is filled in as the events report it."""

    def __init__(
        self, first: StreamPiece | None, pieces: Iterator[StreamPiece], provider: StreamOwner
    ) -> None:
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
            except Exception as exc:
                self._done = True
                self._provider.breaker.record_failure()
                failure = classify(exc, streaming=True)
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
            self._provider.observer.gemini_tokens(
                "answer", self.usage.prompt_tokens, self.usage.completion_tokens
            )

    def _record(self, piece: StreamPiece) -> None:
        if piece.usage is not None:
            self.usage.prompt_tokens, self.usage.completion_tokens = piece.usage
        if piece.finish_reason is not None:
            self.finish_reason = piece.finish_reason


def connection_pool(max_connections: int, timeout: float) -> urllib3.PoolManager:
    """The pool for the stream and the query embedding: `timeout` per connect and per read (a
    stream may take longer in total), no retries of its own (the provider retries), certifi's
    CAs as httpx2 uses. A connection beyond `max_connections` is opened, used and closed."""
    return urllib3.PoolManager(
        maxsize=max_connections,
        block=False,
        retries=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        ca_certs=certifi.where(),
    )


def post(pool: urllib3.PoolManager, url: str, headers: dict[str, str], body: bytes, *, stream: bool) -> Any:
    """Send `request_target`'s headers, then Content-Length (last, as httpx2 sends it); a non-200
    answer raises the SDK's ClientError/ServerError with its body read."""
    response = pool.request(
        "POST",
        url,
        body=body,
        headers={**headers, "content-length": str(len(body))},
        preload_content=not stream,
    )
    if response.status != 200:
        try:
            raw = response.data  # read now if the body was left to stream
            try:
                details: Any = json.loads(raw)
            except ValueError:
                details = {"message": raw.decode(errors="replace"), "status": response.reason}
            errors.APIError.raise_error(response.status, details, response)
        finally:
            response.release_conn()
    return response


def read_pieces(
    pool: urllib3.PoolManager, url: str, headers: dict[str, str], body: bytes
) -> Generator[StreamPiece, None, None]:
    """POST streamGenerateContent?alt=sse and yield one piece per SSE event.

    A non-200 answer raises the SDK's ClientError/ServerError (its body read), an error event
    inside a 200 stream likewise; transport failures raise urllib3's exceptions. Closing the
    generator before the end closes the connection (an unfinished body is not reusable), and
    Gemini stops generating.
    """
    response = post(pool, url, headers, body, stream=True)
    finished = False
    try:
        data: list[str] = []
        for raw in response:  # urllib3 yields the body line by line, each with its "\n"
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif not line and data:
                yield parse_event(json.loads("\n".join(data)), response)
                data = []
            # Anything else (comments, event:/id: fields) is not Gemini's; SSE says skip it.
        if data:
            yield parse_event(json.loads("\n".join(data)), response)
        finished = True
    finally:
        if not finished:
            response.close()
        response.release_conn()


def stream_request_target(config: StreamTarget) -> tuple[str, dict[str, str]]:
    """The URL and headers google-genai would send for streamGenerateContent (its 3.x defaults).

    The key travels only in x-goog-api-key, as with the SDK; these headers are never logged.
    """
    return request_target(config, config.model, "streamGenerateContent?alt=sse")


def model_path(model: str) -> str:
    """`models/<id>`, as the SDK writes a bare model id in URLs and bodies."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def request_target(config: StreamTarget, model: str, method: str) -> tuple[str, dict[str, str]]:
    """The URL and headers google-genai would send to call `method` of `model`, in its order
    (its httpx2 client's own headers first; `post` adds Content-Length)."""
    # GOOGLE_GEMINI_BASE_URL: the SDK's own fallback when no base URL is given, honoured alike.
    base = (config.base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{API_VERSION}/{model_path(model)}:{method}"
    label = f"google-genai-sdk/{genai_version.__version__} gl-python/{sys.version.split()[0]}"
    headers = {
        "host": base.split("://", 1)[-1].split("/", 1)[0],
        "accept": "*/*",
        "accept-encoding": "gzip, deflate",
        "connection": "keep-alive",
        "Content-Type": "application/json",
        "x-goog-api-key": config.api_key,
        "user-agent": label,
        "x-goog-api-client": label,
    }
    if config.timeout_seconds:
        headers["X-Server-Timeout"] = str(math.ceil(config.timeout_seconds))
    return url, headers


def stream_body(
    contents: Sequence[types.Content | dict[str, Any]],
    system_instruction: str,
    temperature: float,
    max_output_tokens: int,
) -> bytes:
    """The JSON body the SDK sends for these contents and this config (json.dumps' default format)."""
    body: dict[str, Any] = {
        "contents": [
            c if isinstance(c, dict) else c.model_dump(mode="json", by_alias=True, exclude_none=True)
            for c in contents
        ]
    }
    if system_instruction:
        body["systemInstruction"] = {"parts": [{"text": system_instruction}], "role": "user"}
    body["generationConfig"] = {"temperature": temperature, "maxOutputTokens": max_output_tokens}
    return json.dumps(body).encode()


def parse_event(event: Any, response: Any) -> StreamPiece:
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
