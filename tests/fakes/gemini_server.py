"""A fake Google Gemini (Generative Language) API server speaking real HTTP.

The official ``google-genai`` SDK talks to it unchanged through
``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=fake.base_url))``.
The wire format follows ``/work/shared/reference/gemini-rest.md``:

* ``POST {prefix}/{v1|v1beta}/models/{model}:generateContent``
* ``POST {prefix}/{v1|v1beta}/models/{model}:streamGenerateContent?alt=sse``
* ``POST {prefix}/{v1|v1beta}/models/{model}:batchEmbedContents``

In-process use::

    with FakeGemini(api_key="test-key") as fake:
        fake.first_token_delay = 0.2
        fake.fail_next(2, 503)
        ...  # point the SDK at fake.base_url, then assert on fake.requests

Out-of-process use (benchmarks, end-to-end tests)::

    python -m tests.fakes.gemini_server --port 0 --api-key KEY --first-token-delay 0.3

prints ``FAKE_GEMINI_URL=http://127.0.0.1:PORT`` once ready and serves until
SIGTERM/SIGINT. It is driven through ``POST /_fake/config``,
``GET /_fake/requests`` and ``POST /_fake/reset``; ``FakeGeminiProcess`` wraps
all of that.

This module uses only the standard library so the standalone process starts fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

API_METHODS = ("generateContent", "streamGenerateContent", "batchEmbedContents")
MAX_EMBED_BATCH = 100
DEFAULT_EMBEDDING_DIM = 3072
MAX_EMBEDDING_DIM = 3072

# Google's canonical status name for each HTTP status the fake can answer.
ERROR_STATUSES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Illustrative messages (the reference notes these are not captured from Google).
_DEFAULT_ERROR_MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "Permission denied: the API key does not have access to this model.",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    499: "The operation was cancelled.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}

# The documented invalid-key envelope, verbatim from the reference.
_API_KEY_INVALID_MESSAGE = "API key not valid. Please pass a valid API key."
API_KEY_INVALID_ENVELOPE = {
    "error": {
        "code": 400,
        "message": _API_KEY_INVALID_MESSAGE,
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": _API_KEY_INVALID_MESSAGE,
            },
        ],
    }
}

# Non-greedy prefix so a base_url path like "/proxy/v1" is kept as a prefix.
_API_ROUTE = re.compile(
    r"^(?P<prefix>.*?)/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):(?P<method>[^/:]+)$"
)
_WORD = re.compile(r"\w+")
# A word plus the whitespace after it, so joining the tokens restores the text.
_TOKEN = re.compile(r"\s*\S+\s*")


def error_envelope(status: int, message: str | None = None, details: list | None = None) -> dict:
    """Return Google's error body ``{"error": {code, message, status, details?}}`` for an HTTP status."""
    if status not in ERROR_STATUSES:
        raise ValueError(f"unsupported error status {status}; choose one of {sorted(ERROR_STATUSES)}")
    error: dict[str, Any] = {
        "code": status,
        "message": message or _DEFAULT_ERROR_MESSAGES[status],
        "status": ERROR_STATUSES[status],
    }
    if details:
        error["details"] = details
    return {"error": error}


def fake_embedding(text: str, dim: int = DEFAULT_EMBEDDING_DIM) -> list[float]:
    """Return the fake's deterministic, L2-normalised embedding of ``text``.

    A signed hashed bag of lower-cased words (weight 1) plus their character
    trigrams (weight 0.3), so texts sharing words score a higher cosine
    similarity and inflections of a word still overlap a little. Values are
    rounded to 6 decimals, exactly what the server puts on the wire.
    """
    vector = [0.0] * dim
    for feature, weight in _embedding_features(text):
        # blake2b rather than hash(): stable across processes and PYTHONHASHSEED.
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        bucket = int.from_bytes(digest[:7], "big") % dim
        vector[bucket] += weight if digest[7] & 1 else -weight
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0.0:
        # Text without words: the real API never returns a zero vector, so use a fixed unit vector.
        vector[0], norm = 1.0, 1.0
    return [round(value / norm, 6) for value in vector]


def _fit(vector: list[float], dim: int) -> list[float]:
    """A vector of exactly ``dim`` values: zero-padded, or cut and L2-normalised again."""
    if len(vector) <= dim:
        return vector + [0.0] * (dim - len(vector))
    cut = vector[:dim]
    norm = math.sqrt(sum(value * value for value in cut)) or 1.0
    return [value / norm for value in cut]


def _embedding_features(text: str) -> list[tuple[str, float]]:
    """List the (feature, weight) pairs hashed into a fake embedding."""
    features: list[tuple[str, float]] = []
    for word in _WORD.findall(text.lower()):
        features.append(("w:" + word, 1.0))
        padded = f"#{word}#"
        features.extend(("t:" + padded[i : i + 3], 0.3) for i in range(len(padded) - 2))
    return features


def default_answer(prompt: str, call_number: int) -> str:
    """Return the default reply for a generation call: ``Fake answer to: <prompt[:40]> [n]``.

    ``call_number`` counts successful generation calls since start/reset, from 1.
    """
    snippet = " ".join(prompt.split())[:40]
    return f"Fake answer to: {snippet} [{call_number}]"


@dataclass(frozen=True)
class Fail:
    """An HTTP error answered instead of a response, with Google's error envelope.

    ``retry_delay`` becomes a ``google.rpc.RetryInfo`` detail (429 only; None omits it);
    ``retry_after`` (seconds) becomes a ``Retry-After`` header on any status (None omits it).
    """

    status: int = 503
    message: str | None = None
    retry_delay: str | None = "7s"
    retry_after: int | None = None

    def __post_init__(self) -> None:
        """Reject statuses the fake has no envelope for, at configuration time."""
        error_envelope(self.status)

    def envelope(self) -> dict:
        """Return the JSON body for this failure (QuotaFailure and RetryInfo details on 429)."""
        details = None
        if self.status == 429:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": (
                                "generativelanguage.googleapis.com/generate_content_free_tier_requests"
                            ),
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaValue": "10",
                        }
                    ],
                }
            ]
            if self.retry_delay is not None:
                details.append(
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay}
                )
        return error_envelope(self.status, self.message, details)

    def headers(self) -> dict[str, str]:
        """Return the extra response headers for this failure."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class Answer:
    """One scripted generation call: the text to answer and an optional stream fault.

    ``text`` None means the current ``reply_text`` or the default answer.
    ``error_after_events``: send a ``data: {"error": ...}`` event with ``error_status``
    after that many events, then end the body. ``drop_after_events``: cut the
    connection after that many events. Stream faults only affect
    ``streamGenerateContent``; a non-stream call just answers ``text``.
    """

    text: str | None = None
    error_after_events: int | None = None
    error_status: int = 503
    drop_after_events: int | None = None

    def __post_init__(self) -> None:
        """Validate the fault settings at configuration time."""
        error_envelope(self.error_status)
        if self.error_after_events is not None and self.drop_after_events is not None:
            raise ValueError("an Answer can either error or drop mid-stream, not both")


ScriptItem = str | Answer | Fail


def _script_item(item: ScriptItem | dict) -> Answer | Fail:
    """Normalise one script entry: a str is an answer text, a dict with "status" is a Fail, else an Answer."""
    if isinstance(item, (Answer, Fail)):
        return item
    if isinstance(item, str):
        return Answer(text=item)
    if isinstance(item, dict):
        return Fail(**item) if "status" in item else Answer(**item)
    raise TypeError(f"script entries are str, Answer, Fail or dict, not {type(item).__name__}")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (failed ones included). ``headers`` keys are lower-case."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    model: str | None
    method_name: str | None
    api_version: str | None
    time: float

    def to_json(self) -> dict:
        """Return this record as a JSON-ready dict (the shape ``GET /_fake/requests`` lists)."""
        return asdict(self)


# --- knob validation -------------------------------------------------------------


def _non_negative_float(value: Any) -> float:
    """Coerce a delay/rate knob, rejecting negatives."""
    number = float(value)
    if number < 0:
        raise ValueError(f"expected a non-negative number, got {value!r}")
    return number


def _positive_int(value: Any) -> int:
    """Coerce a count knob that must be at least 1."""
    number = int(value)
    if number < 1:
        raise ValueError(f"expected an integer >= 1, got {value!r}")
    return number


def _optional_event_count(value: Any) -> int | None:
    """Coerce an "after k events" knob: None disables it, else an integer >= 0."""
    if value is None:
        return None
    number = int(value)
    if number < 0:
        raise ValueError(f"expected an integer >= 0 or None, got {value!r}")
    return number


def _optional_text(value: Any) -> str | None:
    """Coerce the reply text knob: None restores the default answer."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or None, got {type(value).__name__}")
    return value


def _error_status(value: Any) -> int:
    """Coerce an error status knob to one the fake has an envelope for."""
    status = int(value)
    error_envelope(status)
    return status


class _Knob:
    """A validated behaviour setting of FakeGemini, read by handler threads at the start of each call."""

    def __init__(self, default: Any, coerce: Callable[[Any], Any]) -> None:
        """Remember the default and the validator."""
        self.default = default
        self.coerce = coerce

    def __set_name__(self, owner: type, name: str) -> None:
        """Store values under a private per-instance attribute."""
        self.name = name
        self.storage = "_knob_" + name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """Return the instance's value, or the default if never set."""
        if instance is None:
            return self
        return getattr(instance, self.storage, self.default)

    def __set__(self, instance: Any, value: Any) -> None:
        """Validate and store a new value."""
        setattr(instance, self.storage, self.coerce(value))

    def restore_default(self, instance: Any) -> None:
        """Forget the instance's value so the default applies again."""
        instance.__dict__.pop(self.storage, None)


# --- per-call decisions ------------------------------------------------------------


class _ErrorReply(NamedTuple):
    """An error response: HTTP status, JSON body, extra headers."""

    status: int
    body: dict
    headers: dict


class _JsonReply(NamedTuple):
    """A successful JSON response sent after ``delay`` seconds."""

    body: dict
    delay: float


@dataclass(frozen=True)
class _StreamPlan:
    """Everything a streaming call needs, snapshotted when the call arrives."""

    events: list
    error_event: dict | None
    fault_index: int | None
    drop: bool
    first_token_delay: float
    event_interval: float


@dataclass
class _FailureRule:
    """Pending ``fail_next`` failures: ``remaining`` more calls of ``method`` (None = any) fail."""

    remaining: int
    method: str | None
    failure: Fail


def _texts(content: Any) -> list[str]:
    """Return the text parts of a Content-shaped dict (anything else yields nothing)."""
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        return []
    return [
        part["text"]
        for part in content["parts"]
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]


def _split_tokens(text: str) -> list[str]:
    """Split an answer into word tokens whose concatenation is exactly ``text``."""
    tokens = _TOKEN.findall(text)
    return tokens or [text]


class FakeGemini:
    """In-process fake Gemini API server on 127.0.0.1 (a ThreadingHTTPServer in a daemon thread).

    Use as a context manager (or call ``start``/``stop``). Behaviour knobs are plain
    attributes, validated on assignment: ``first_token_delay`` (s before the first
    SSE event; total latency of ``generateContent``), ``tokens_per_second`` (0 = no
    pacing), ``chunk_words`` (words per SSE event), ``reply_text`` (None = default
    answer), ``error_after_events`` / ``error_status`` and ``drop_after_events``
    (stream faults for unscripted streaming calls).
    """

    first_token_delay = _Knob(0.0, _non_negative_float)
    tokens_per_second = _Knob(0.0, _non_negative_float)
    chunk_words = _Knob(1, _positive_int)
    reply_text = _Knob(None, _optional_text)
    error_after_events = _Knob(None, _optional_event_count)
    error_status = _Knob(503, _error_status)
    drop_after_events = _Knob(None, _optional_event_count)

    KNOBS = (
        "first_token_delay",
        "tokens_per_second",
        "chunk_words",
        "reply_text",
        "error_after_events",
        "error_status",
        "drop_after_events",
    )

    def __init__(
        self,
        api_key: str | None = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        embedder: Callable[[list[str]], list[list[float]]] | None = None,
        **knobs: Any,
    ) -> None:
        """Create a stopped fake. ``api_key`` None accepts any non-empty key; ``knobs`` as in ``configure``.

        ``embedder`` replaces the deterministic fake embeddings of ``batchEmbedContents``: it gets
        the batch's texts and returns one vector each (benchmarks plug a real sentence-embedding
        model in here). Each vector is fitted to the requested ``outputDimensionality``: zeros
        appended when shorter, cut and re-normalised when longer (as Gemini's own smaller sizes).
        """
        self.api_key = api_key
        self.embedder = embedder
        self._address = (host, port)
        self._lock = threading.Lock()
        self._abandoned_streams = 0
        # Set on stop so handlers sleeping through a delay give up instead of outliving the test.
        self._stopping = threading.Event()
        self._server: _FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RecordedRequest] = []
        self._script: deque[Answer | Fail] = deque()
        self._failure_rules: list[_FailureRule] = []
        self._generation_calls = 0
        self.configure(**knobs)

    # --- lifecycle ---

    def start(self) -> FakeGemini:
        """Bind a port and start serving in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("FakeGemini is already running")
        self._stopping.clear()
        self._server = _FakeHTTPServer(self._address, _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers and close every open connection."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_all_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeGemini:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        """Stop the server."""
        self.stop()

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as ``HttpOptions(base_url=...)``."""
        if self._server is None:
            raise RuntimeError("FakeGemini is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- configuration ---

    def configure(self, **settings: Any) -> None:
        """Apply knobs and actions by name; the same keys as ``POST /_fake/config``.

        Knob keys: see ``KNOBS``. Action keys: ``fail_next`` (a dict of ``fail_next``
        arguments, or a list of them) and ``script`` (a list for ``script``).
        Unknown keys raise ValueError and nothing is applied.
        """
        unknown = set(settings) - set(self.KNOBS) - {"fail_next", "script"}
        if unknown:
            raise ValueError(f"unknown fake settings: {sorted(unknown)}")
        for name in self.KNOBS:
            if name in settings:
                setattr(self, name, settings[name])
        if "fail_next" in settings:
            rules = settings["fail_next"]
            for rule in rules if isinstance(rules, list) else [rules]:
                self.fail_next(**rule)
        if "script" in settings:
            self.script(settings["script"])

    def knobs(self) -> dict[str, Any]:
        """Return the current knob values by name."""
        return {name: getattr(self, name) for name in self.KNOBS}

    def reply_with(self, text: str | None) -> None:
        """Answer every generation call with ``text`` (None restores the default answer)."""
        self.reply_text = text

    def script(self, items: list[ScriptItem | dict]) -> None:
        """Replace the per-call script for generation calls, consumed one entry per call in order.

        Entries: a str (answer text), ``Answer`` (text and/or stream fault), ``Fail``
        (HTTP error), or the dict form of either (a dict with "status" is a Fail).
        When the script runs out, calls fall back to the knobs.
        """
        parsed = [_script_item(item) for item in items]
        with self._lock:
            self._script = deque(parsed)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        method: str | None = None,
        message: str | None = None,
        retry_delay: str | None = "7s",
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``n`` calls (of ``method``, or of any) answer ``status`` with an error envelope.

        Checked before the script and before request validation. 429 carries
        QuotaFailure and RetryInfo(``retry_delay``) details; ``retry_after`` adds a
        ``Retry-After`` header. Rules queue up in the order they were added.
        """
        if method is not None and method not in API_METHODS:
            raise ValueError(f"method must be one of {API_METHODS} or None, got {method!r}")
        rule = _FailureRule(_positive_int(n), method, Fail(status, message, retry_delay, retry_after))
        with self._lock:
            self._failure_rules.append(rule)

    def reset(self) -> None:
        """Forget recorded requests, the script, pending failures, the call counter and all knob values."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._failure_rules.clear()
            self._generation_calls = 0
            self._abandoned_streams = 0
        for name in self.KNOBS:
            getattr(type(self), name).restore_default(self)

    # --- inspection ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every API request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def abandoned_streams(self) -> int:
        """Streams whose client went away before the answer ended (the request was abandoned)."""
        with self._lock:
            return self._abandoned_streams

    def _note_abandoned_stream(self) -> None:
        with self._lock:
            self._abandoned_streams += 1

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent API request, or None."""
        with self._lock:
            return self._requests[-1] if self._requests else None

    # --- request handling (called from handler threads) ---

    def _record(self, request: RecordedRequest) -> None:
        """Append a request to the log."""
        with self._lock:
            self._requests.append(request)

    def _take_failure(self, method: str) -> Fail | None:
        """Consume one pending ``fail_next`` failure matching ``method``, if any."""
        with self._lock:
            for rule in self._failure_rules:
                if rule.method in (None, method):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._failure_rules.remove(rule)
                    return rule.failure
        return None

    def _next_generation_step(self) -> tuple[Answer | Fail | None, int]:
        """Pop the next script entry (None if empty) and, unless it is a Fail, count the call."""
        with self._lock:
            step = self._script.popleft() if self._script else None
            if not isinstance(step, Fail):
                self._generation_calls += 1
            return step, self._generation_calls

    def _decide(self, request: RecordedRequest) -> _ErrorReply | _JsonReply | _StreamPlan:
        """Decide how to answer an API request, in the order the real service would reject it."""
        route = _API_ROUTE.match(request.path)
        if request.method != "POST" or route is None or route["method"] not in API_METHODS:
            return _ErrorReply(404, error_envelope(404), {})
        key = request.headers.get("x-goog-api-key")
        if not key or (self.api_key is not None and key != self.api_key):
            return _ErrorReply(400, API_KEY_INVALID_ENVELOPE, {})
        method = route["method"]
        if method == "streamGenerateContent" and request.query != "alt=sse":
            return _ErrorReply(
                400, error_envelope(400, "The fake serves streamGenerateContent only with ?alt=sse."), {}
            )
        if not isinstance(request.body, dict):
            return _ErrorReply(400, error_envelope(400, "Invalid JSON payload received."), {})
        failure = self._take_failure(method)
        if failure is not None:
            return _ErrorReply(failure.status, failure.envelope(), failure.headers())
        if method == "batchEmbedContents":
            return self._embed(request.body)
        return self._generate(request.body, route["model"], stream=method == "streamGenerateContent")

    def _embed(self, body: dict) -> _ErrorReply | _JsonReply:
        """Answer batchEmbedContents: one fake embedding per entry, at most 100 entries."""
        entries = body.get("requests")
        if not isinstance(entries, list) or not entries:
            return _ErrorReply(
                400,
                error_envelope(400, "* BatchEmbedContentsRequest.requests: contents is not specified"),
                {},
            )
        if len(entries) > MAX_EMBED_BATCH:
            limit = f"at most {MAX_EMBED_BATCH} requests can be in one batch"
            message = f"* BatchEmbedContentsRequest.requests: {limit}\n"
            return _ErrorReply(400, error_envelope(400, message), {})
        texts, dims = [], []
        for entry in entries:
            dim = (
                entry.get("outputDimensionality", DEFAULT_EMBEDDING_DIM) if isinstance(entry, dict) else None
            )
            if not isinstance(dim, int) or not 1 <= dim <= MAX_EMBEDDING_DIM:
                message = (
                    f"* BatchEmbedContentsRequest.requests[{len(texts)}].output_dimensionality: "
                    f"must be between 1 and {MAX_EMBEDDING_DIM}\n"
                )
                return _ErrorReply(400, error_envelope(400, message), {})
            texts.append(" ".join(_texts(entry.get("content"))))
            dims.append(dim)
        if self.embedder is None:
            vectors = [fake_embedding(text, dim) for text, dim in zip(texts, dims, strict=True)]
        else:
            vectors = [
                _fit(list(map(float, vector)), dim)
                for vector, dim in zip(self.embedder(texts), dims, strict=True)
            ]
        return _JsonReply({"embeddings": [{"values": vector} for vector in vectors]}, 0.0)

    def _generate(self, body: dict, model: str, *, stream: bool) -> _ErrorReply | _JsonReply | _StreamPlan:
        """Answer generateContent / streamGenerateContent from the script or the knobs."""
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return _ErrorReply(
                400, error_envelope(400, "* GenerateContentRequest.contents: contents is not specified\n"), {}
            )
        step, call_number = self._next_generation_step()
        if isinstance(step, Fail):
            return _ErrorReply(step.status, step.envelope(), step.headers())
        answer = step or Answer(
            text=self.reply_text,
            error_after_events=self.error_after_events,
            error_status=self.error_status,
            drop_after_events=self.drop_after_events,
        )
        text = answer.text
        if text is None:
            text = default_answer(_last_user_text(contents), call_number)

        prompt_words = sum(
            len(t.split()) for c in [*contents, body.get("systemInstruction")] for t in _texts(c)
        )
        tokens = _split_tokens(text)
        usage = {
            "promptTokenCount": prompt_words,
            "candidatesTokenCount": len(tokens),
            "totalTokenCount": prompt_words + len(tokens),
        }
        response_id = f"fake-resp-{call_number}"

        def response(chunk_text: str, last: bool) -> dict:
            """One GenerateContentResponse; the last carries finishReason and usageMetadata."""
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": chunk_text}], "role": "model"},
                "index": 0,
            }
            payload: dict[str, Any] = {
                "candidates": [candidate],
                "modelVersion": model,
                "responseId": response_id,
            }
            if last:
                candidate["finishReason"] = "STOP"
                payload["usageMetadata"] = usage
            return payload

        first_token_delay = self.first_token_delay
        if not stream:
            return _JsonReply(response(text, last=True), first_token_delay)

        words_per_event = self.chunk_words
        chunks = ["".join(tokens[i : i + words_per_event]) for i in range(0, len(tokens), words_per_event)]
        events = [response(chunk, last=i == len(chunks) - 1) for i, chunk in enumerate(chunks)]
        fault_after = (
            answer.error_after_events if answer.error_after_events is not None else answer.drop_after_events
        )
        tokens_per_second = self.tokens_per_second
        return _StreamPlan(
            events=events,
            error_event=error_envelope(answer.error_status)
            if answer.error_after_events is not None
            else None,
            # A fault "after k events" fires after the last event when k exceeds the count.
            fault_index=None if fault_after is None else min(fault_after, len(events)),
            drop=answer.drop_after_events is not None,
            first_token_delay=first_token_delay,
            event_interval=words_per_event / tokens_per_second if tokens_per_second else 0.0,
        )


def _last_user_text(contents: list) -> str:
    """Return the text of the last user turn (a turn without a role counts as user)."""
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts = _texts(content)
            if texts:
                return " ".join(texts)
    return ""


# --- HTTP plumbing -------------------------------------------------------------------


class _FakeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its FakeGemini and tracks open connections so stop() can close them."""

    daemon_threads = True
    # Hundreds of concurrent streams may connect at once; the default backlog of 5 would refuse some.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeGemini) -> None:
        """Bind and listen; remember the fake for the handlers."""
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Track the connection, then serve it in a thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        """Forget the connection once its handler is done."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        """Shut down every open connection (idle keep-alive ones included) so handler threads exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away (timeouts, dropped streams); report anything else."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection: the control surface under /_fake/ and the Gemini API routes."""

    # HTTP/1.1 so the SDK's keep-alive pool and chunked SSE work as against Google.
    protocol_version = "HTTP/1.1"
    # Each SSE event is one small write; Nagle would hold it back behind the previous one's ACK.
    disable_nagle_algorithm = True
    server: _FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test and benchmark output clean: the request log lives in ``FakeGemini.requests``."""

    def do_GET(self) -> None:
        """Serve ``GET /_fake/requests``; any other GET is an API 404."""
        self._dispatch()

    def do_POST(self) -> None:
        """Serve the control surface and the API routes."""
        self._dispatch()

    def _dispatch(self) -> None:
        """Route one request, treating a vanished client as the end of the connection."""
        url = urlsplit(self.path)
        body = self._read_body()
        try:
            if url.path.startswith("/_fake/"):
                self._control(url.path, body)
            else:
                self._api(url.path, url.query, body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        """Read the request body (the SDK always sends Content-Length)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _control(self, path: str, raw_body: bytes) -> None:
        """Serve ``/_fake/config``, ``/_fake/requests`` and ``/_fake/reset``."""
        fake = self.server.fake
        if self.command == "GET" and path == "/_fake/requests":
            self._send_json(200, [request.to_json() for request in fake.requests])
        elif self.command == "GET" and path == "/_fake/stats":
            self._send_json(200, {"abandoned_streams": fake.abandoned_streams})
        elif self.command == "POST" and path == "/_fake/reset":
            fake.reset()
            self._send_json(200, {"ok": True})
        elif self.command == "POST" and path == "/_fake/config":
            try:
                fake.configure(**json.loads(raw_body or b"{}"))
            except (ValueError, TypeError) as exc:
                self._send_json(400, {"ok": False, "error": str(exc)})
                return
            self._send_json(200, {"ok": True, "knobs": fake.knobs()})
        else:
            self._send_json(404, {"ok": False, "error": f"no control endpoint {self.command} {path}"})

    def _api(self, path: str, query: str, raw_body: bytes) -> None:
        """Record an API request and answer it as decided by the fake."""
        fake = self.server.fake
        route = _API_ROUTE.match(path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=_parse_json(raw_body),
            model=route["model"] if route else None,
            method_name=route["method"] if route else None,
            api_version=route["version"] if route else None,
            time=time.time(),
        )
        fake._record(request)
        reply = fake._decide(request)
        if isinstance(reply, _ErrorReply):
            self._send_json(reply.status, reply.body, reply.headers)
        elif isinstance(reply, _JsonReply):
            if self._pause(reply.delay):
                self._send_json(200, reply.body)
        else:
            try:
                self._stream(reply)
            except (ConnectionError, TimeoutError):
                fake._note_abandoned_stream()
                raise

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the fake stops meanwhile.

        Once stopping, mark the connection closed and return False."""
        stopping = self.server.fake._stopping
        stopped = stopping.wait(seconds) if seconds > 0 else stopping.is_set()
        if stopped:
            self.close_connection = True
        return not stopped

    def _send_json(self, status: int, payload: Any, extra_headers: dict | None = None) -> None:
        """Send a complete JSON response with Content-Length, keeping the connection alive."""
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, plan: _StreamPlan) -> None:
        """Send the SSE stream on the plan's schedule: headers with the first event, one chunk per event."""
        start = time.monotonic()
        if not self._pause(plan.first_token_delay):
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        first_event_at = start + plan.first_token_delay
        for index, event in enumerate(plan.events):
            # Schedule against absolute times so pacing does not drift with write latency.
            if index and not self._pause(first_event_at + index * plan.event_interval - time.monotonic()):
                return
            if index == plan.fault_index:
                break
            self._write_chunk(_sse_event(event))
        if plan.fault_index is not None and plan.drop:
            # FIN without the terminating chunk: httpx sees an incomplete chunked body.
            # Not an RST, which could make the client discard events it has not read yet.
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if plan.fault_index is not None:
            self._write_chunk(_sse_event(plan.error_event))
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk (empty data writes the terminating chunk) in a single send."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _sse_event(payload: dict) -> bytes:
    """Frame one SSE event exactly as the SDK expects: ``data: <one-line JSON>`` and a blank line."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode("utf-8") + b"\n\n"


def _parse_json(raw: bytes) -> Any:
    """Parse a request body: JSON value, None when empty, or the raw text when not JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


# --- out-of-process mode ---------------------------------------------------------------


class FakeGeminiProcess:
    """Runs ``python -m tests.fakes.gemini_server`` as a child process and drives its control surface.

    A context manager mirroring FakeGemini's surface: ``base_url``, ``configure``,
    ``reset`` and ``requests`` (the last three call ``/_fake/*`` over HTTP).
    """

    def __init__(
        self, api_key: str = "test-key", *, extra_args: tuple[str, ...] = (), startup_timeout: float = 10.0
    ) -> None:
        """Prepare, not start, the process; ``extra_args`` are more flags (``--first-token-delay 0.3``)."""
        self.api_key = api_key
        self._extra_args = tuple(extra_args)
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen | None = None
        self.base_url = ""

    def start(self) -> FakeGeminiProcess:
        """Start the process and wait for its ``FAKE_GEMINI_URL=`` line."""
        project_root = Path(__file__).resolve().parents[2]
        command = [
            sys.executable,
            "-m",
            "tests.fakes.gemini_server",
            "--port",
            "0",
            "--api-key",
            self.api_key,
        ]
        self._process = subprocess.Popen(
            [*command, *self._extra_args], cwd=project_root, stdout=subprocess.PIPE, text=True
        )
        ready, _, _ = select.select([self._process.stdout], [], [], self._startup_timeout)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("FAKE_GEMINI_URL="):
            self.stop()
            raise RuntimeError(f"fake Gemini process did not start (first line: {line!r})")
        self.base_url = line.strip().split("=", 1)[1]
        return self

    def stop(self) -> int | None:
        """SIGTERM the process (SIGKILL after 5 s) and return its exit code."""
        if self._process is None:
            return None
        process, self._process = self._process, None
        process.terminate()
        try:
            return process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
        finally:
            process.stdout.close()

    def __enter__(self) -> FakeGeminiProcess:
        """Start the process."""
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        """Stop the process."""
        self.stop()

    def configure(self, **settings: Any) -> dict:
        """POST settings to ``/_fake/config`` (same keys as ``FakeGemini.configure``); returns the knobs."""
        return self._call("POST", "/_fake/config", settings)["knobs"]

    def reset(self) -> None:
        """POST ``/_fake/reset``."""
        self._call("POST", "/_fake/reset", {})

    @property
    def requests(self) -> list[RecordedRequest]:
        """GET ``/_fake/requests``: every API request the process received, oldest first."""
        return [RecordedRequest(**record) for record in self._call("GET", "/_fake/requests", None)]

    @property
    def abandoned_streams(self) -> int:
        """GET ``/_fake/stats``: streams whose client went away before the answer ended."""
        return self._call("GET", "/_fake/stats", None)["abandoned_streams"]

    def _call(self, method: str, path: str, payload: Any) -> Any:
        """Make one control-surface call and return its JSON answer."""
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the standalone server's command line."""
    parser = argparse.ArgumentParser(description="Fake Gemini API server for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="test-key", help="the only key accepted (x-goog-api-key)")
    parser.add_argument(
        "--first-token-delay", type=float, default=0.0, help="seconds before the first SSE event"
    )
    parser.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="stream pacing; 0 = as fast as possible"
    )
    parser.add_argument("--chunk-words", type=int, default=1, help="words per SSE event")
    parser.add_argument("--reply-text", default=None, help="fixed answer instead of the default one")
    parser.add_argument(
        "--error-after-events", type=int, default=None, help="send an error event after k events"
    )
    parser.add_argument("--error-status", type=int, default=503, help="status of the mid-stream error event")
    parser.add_argument(
        "--drop-after-events", type=int, default=None, help="cut the connection after k events"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the fake until SIGTERM/SIGINT, announcing ``FAKE_GEMINI_URL=...`` on stdout once ready."""
    args = _parse_args(argv)
    knobs = {name: getattr(args, name) for name in FakeGemini.KNOBS}
    # Block the signals before any thread exists so every thread inherits the mask and
    # sigwait() below receives them: no handler can race the shutdown. SIG_DFL first
    # because a shell starts background jobs with SIGINT ignored, and an ignored
    # signal is discarded instead of reaching sigwait().
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    for stop_signal in stop_signals:
        signal.signal(stop_signal, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    fake = FakeGemini(api_key=args.api_key, host=args.host, port=args.port, **knobs).start()
    print(f"FAKE_GEMINI_URL={fake.base_url}", flush=True)
    signal.sigwait(stop_signals)
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
