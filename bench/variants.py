"""The service with one lever changed, for side-by-side runs of bench.load (`--variants`).

gunicorn loads `bench.variants:app_from_env()` instead of `wsgi:app`; each worker builds the app
with the variants named in BENCH_VARIANTS (comma-separated), so the service is the project's
code with exactly those changes. `current` changes nothing. A variant is a patch of the code
(PATCHES, applied before the app is built), a change of tuning (TUNING: fields of app/tuning.py's
`Tuning`, on top of the tuning bench.load hands over in TEST_TUNING, tests/tuning.py), or
environment overrides (ENV: settings such as quiet logs, applied by bench.load). Every patch
replaces an attribute that must exist, and tests/integration/test_bench_variants.py answers a
chat through each variant, so a variant cannot rot unseen when the code it patches changes.

Variants that remove work (no database writes, memoised retrieval) are not options for the
service: they measure what that work costs, to decide whether a lever there can pay. Others are
experiments measured and not kept (bench/README.md, "CPU per answer": the GIL switch interval,
an admission gate, the accept batch, malloc_trim). `timeline` is an instrument: it stamps each
chat's steps (summarised by bench/timeline.py).
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.tuning import Tuning
from tests.tuning import tuning_from_env

if TYPE_CHECKING:
    from flask import Flask

# Environment overrides per variant (applied by bench.load to the service it starts).
ENV: dict[str, dict[str, str]] = {
    "current": {},
    "sdk-stream": {},
    "httpx2-stream": {},
    "no-query-embedding": {},
    "no-keepalive-thread": {},
    "no-db-writes": {},
    "memo-retrieval": {},
    "quiet-logs": {"LOG_LEVEL": "WARNING"},
    "timeline": {"BENCH_TIMELINE": "/tmp/bench-timeline"},
    "malloc-trim": {},
    "gate-2": {"BENCH_TIMELINE": "/tmp/bench-timeline"},
    "accept-1": {"BENCH_TIMELINE": "/tmp/bench-timeline"},
    "accept-4": {"BENCH_TIMELINE": "/tmp/bench-timeline"},
    "accept-1-gate-2": {"BENCH_TIMELINE": "/tmp/bench-timeline"},
    "gate-4": {"BENCH_TIMELINE": "/tmp/bench-timeline"},
    "gate-cpu-2": {},
    "gate-cpu-1": {},
    "switch-1ms": {},
    "switch-0.5ms": {},
    "switch-20ms": {},
    "switch-50ms": {},
}

# Tuning per variant (fields of app/tuning.py's Tuning).
TUNING: dict[str, dict[str, Any]] = {
    "no-keepalive-thread": {"keepalive_seconds": 0},  # events framed inline, no producer thread
}

# How to undo what the patches did, newest last (restore(): the smoke test tries every variant
# in one process).
_UNDO: list[Callable[[], None]] = []
_MISSING = object()


def _patch(owner: Any, name: str, value: Any) -> None:
    """Set `owner.name` to `value`; `owner` must have it already (a renamed method or function is an
    error here, not a patch that silently changes nothing)."""
    if not hasattr(owner, name):
        raise AttributeError(
            f"bench variant: {getattr(owner, '__name__', owner)!r} has no {name!r} to replace"
        )
    own = vars(owner).get(name, _MISSING)

    def undo() -> None:
        if own is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, own)

    setattr(owner, name, value)
    _UNDO.append(undo)


def sdk_stream() -> None:
    """Answers streamed through google-genai's generate_content_stream: a model object per event.

    This was the code before the raw reader."""
    from google.genai import types

    from app.services.providers import gemini, gemini_stream

    def stream(
        self: Any,
        contents: list,
        *,
        system_instruction: str,
        temperature: float = 0.2,
        max_output_tokens: int = 1024,
    ) -> gemini_stream.GeminiStream:
        config = types.GenerateContentConfig(
            system_instruction=system_instruction,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
        )

        def pieces(chunks: Iterator[Any]) -> Iterator[gemini_stream.StreamPiece]:
            try:
                for chunk in chunks:
                    yield _sdk_piece(chunk)
            finally:
                chunks.close()

        def start() -> tuple[Any, Iterator[Any]]:
            chunks = self.client.models.generate_content_stream(
                model=self.config.model, contents=contents, config=config
            )
            try:
                first = next(chunks)
            except StopIteration:
                return None, iter(())
            except BaseException:
                chunks.close()
                raise
            return _sdk_piece(first), pieces(chunks)

        first, rest = self._with_retries(start, what="answer")
        return gemini_stream.GeminiStream(first, rest, self)

    def _sdk_piece(chunk: Any) -> gemini_stream.StreamPiece:
        usage = chunk.usage_metadata
        counts = None if usage is None else (usage.prompt_token_count, usage.candidates_token_count)
        candidates = chunk.candidates or []
        finish = candidates[0].finish_reason if candidates else None
        return gemini_stream.StreamPiece(chunk.text or "", counts, None if finish is None else str(finish))

    _patch(gemini.GeminiProvider, "stream", stream)


def httpx2_stream() -> None:
    """Answers read off the wire as now, but over an httpx2 client (the reader before urllib3)."""
    import json

    import httpx2
    from google.genai import errors

    from app.services.providers import gemini, gemini_stream

    client = httpx2.Client(
        timeout=30.0, limits=httpx2.Limits(max_connections=256, max_keepalive_connections=256)
    )

    def read_pieces(
        pool: Any, url: str, headers: dict[str, str], body: bytes
    ) -> Iterator[gemini_stream.StreamPiece]:
        response = client.send(client.build_request("POST", url, content=body, headers=headers), stream=True)
        try:
            errors.APIError.raise_for_response(response)
            data: list[str] = []
            for line in response.iter_lines():
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                elif not line and data:
                    yield gemini_stream.parse_event(json.loads("\n".join(data)), response)
                    data = []
            if data:
                yield gemini_stream.parse_event(json.loads("\n".join(data)), response)
        finally:
            response.close()

    _patch(gemini, "read_pieces", read_pieces)


def no_query_embedding() -> None:
    """Keyword retrieval only: no embedding call, no dense search."""
    from app.services.retrieval.retriever import Retriever

    _patch(Retriever, "_embed", lambda self, question: None)


def no_db_writes() -> None:
    """The question and the answer are not stored (new ids, no history): what the two writes cost."""
    from app.services.conversations import ConversationStore, OpenTurn

    def open_turn(
        self: Any, conversation_id: Any, message: str, mode: str, context: Any, worker_id: Any = None
    ) -> OpenTurn:
        return OpenTurn(conversation_id or uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), [])

    _patch(ConversationStore, "open_turn", open_turn)
    _patch(ConversationStore, "finish_turn", lambda self, message_id, outcome: None)


def memo_retrieval() -> None:
    """Each distinct question is retrieved once (embedding call and search), then remembered."""
    from app.services.retrieval.retriever import Retriever

    original = Retriever.retrieve
    memo: dict[tuple[str, Any], Any] = {}

    def retrieve(
        self: Any, question: str, *, limit: int | None = None, alternatives: Any = (), page: str | None = None
    ) -> Any:
        key = (question, limit, tuple(alternatives), page)
        if key not in memo:
            memo[key] = original(self, question, limit=limit, alternatives=alternatives, page=page)
        return memo[key]

    _patch(Retriever, "retrieve", retrieve)


def switch_interval(seconds: float) -> Callable[[], None]:
    """The interpreter's GIL switch interval (default 5 ms): how long a thread that wants the GIL
    back (after a socket or SQLite call) may wait while others compute."""

    def patch() -> None:
        previous = sys.getswitchinterval()
        _UNDO.append(lambda: sys.setswitchinterval(previous))
        sys.setswitchinterval(seconds)

    return patch


_TIMELINE = threading.local()


def timeline() -> None:
    """Each chat's timeline, one JSON line per chat in $BENCH_TIMELINE.<pid>: when its connection
    was accepted, its request whole and queued for a thread, taken by a thread, seen by Flask;
    the question stored, the passages found, Gemini's first piece in; the first byte handed to
    gunicorn. Wall-clock seconds (time.time), so several workers' lines share one clock."""
    import json
    import time

    from gunicorn.workers import gthread

    from app.services.conversations import ConversationStore
    from app.services.providers.gemini import GeminiProvider
    from app.services.retrieval.retriever import Retriever

    out = open(f"{os.environ.get('BENCH_TIMELINE', '/tmp/timeline')}.{os.getpid()}", "a", buffering=1)
    _UNDO.append(out.close)

    def stamp(name: str) -> None:
        marks = getattr(_TIMELINE, "marks", None)
        if marks is not None:
            marks[name] = time.time()

    def stamped(cls: Any, method: str, name: str) -> None:
        original = getattr(cls, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            stamp(name)
            return result

        _patch(cls, method, wrapper)

    conn_init = gthread.TConn.__init__

    def tconn_init(self: Any, *args: Any, **kwargs: Any) -> None:
        conn_init(self, *args, **kwargs)
        self.t_accept = time.time()

    enqueue = gthread.ThreadWorker.enqueue_req

    def enqueue_req(self: Any, conn: Any) -> None:
        conn.t_queued = time.time()
        enqueue(self, conn)

    handle = gthread.ThreadWorker.handle_request

    def handle_request(self: Any, req: Any, conn: Any) -> Any:
        _TIMELINE.marks = {
            "accept": getattr(conn, "t_accept", None),
            "queued": getattr(conn, "t_queued", None),
            "thread": time.time(),
        }
        return handle(self, req, conn)

    _patch(gthread.TConn, "__init__", tconn_init)
    _patch(gthread.ThreadWorker, "enqueue_req", enqueue_req)
    _patch(gthread.ThreadWorker, "handle_request", handle_request)
    stamped(ConversationStore, "open_turn", "stored")
    stamped(GeminiProvider, "embed_query", "embedded")
    stamped(Retriever, "retrieve", "retrieved")
    stamped(GeminiProvider, "stream", "first_piece")

    def middleware(app: Any) -> Any:
        def wsgi(environ: dict, start_response: Any) -> Any:
            stamp("flask")
            marks = getattr(_TIMELINE, "marks", {})
            body = app(environ, start_response)

            def chunks() -> Any:
                first = True
                try:
                    for chunk in body:
                        if first:
                            marks["first_byte"] = time.time()
                            first = False
                        yield chunk
                finally:
                    if hasattr(body, "close"):
                        body.close()
                    if environ.get("PATH_INFO") == "/api/chat":
                        out.write(json.dumps({"pid": os.getpid(), **marks}) + "\n")

            return chunks()

        return wsgi

    _WRAPPERS.append(middleware)


_WRAPPERS: list[Callable[[Any], Any]] = []


def gate(slots: int) -> Callable[[], None]:
    """Experiment: at most `slots` threads per worker storing a question or retrieving at once."""

    def patch() -> None:
        from app.services.conversations import ConversationStore
        from app.services.retrieval.retriever import Retriever

        semaphore = threading.Semaphore(slots)
        for cls, method in ((ConversationStore, "open_turn"), (Retriever, "retrieve")):
            original = getattr(cls, method)

            def wrapper(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
                with semaphore:
                    return __original(*args, **kwargs)

            _patch(cls, method, wrapper)
        timeline()

    return patch


def cpu_gate(slots: int) -> Callable[[], None]:
    """Experiment: at most `slots` threads per worker in retrieval's CPU-only steps at once (the
    index searches, the floor, shaping); storing the question and the embedding call, which wait
    on a network in production, stay outside."""

    def patch() -> None:
        from app.services.index.edge import EdgeIndex
        from app.services.retrieval.floor import RelevanceFloor
        from app.services.retrieval.retriever import Retriever

        semaphore = threading.Semaphore(slots)
        for cls, method in (
            (EdgeIndex, "search"),
            (RelevanceFloor, "judge"),
            (Retriever, "_shape"),
            (Retriever, "_passages"),
        ):
            original = getattr(cls, method)

            def wrapper(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
                with semaphore:
                    return __original(*args, **kwargs)

            _patch(cls, method, wrapper)

    return patch


def accept_batch(size: int, *then: Callable[[], None]) -> Callable[[], None]:
    """Experiment: connections a worker accepts per pass of its main loop."""

    def patch() -> None:
        from app.gunicorn_worker import BufferingThreadWorker

        _patch(BufferingThreadWorker, "accept_batch", size)
        for more in then or (timeline,):
            more()

    return patch


def malloc_trim_every(seconds: float) -> Callable[[], None]:
    """Experiment: glibc's malloc_trim(0) (free pages of every arena back to the kernel) on a timer."""

    def patch() -> None:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        stop = threading.Event()

        def trim() -> None:
            while not stop.wait(seconds):
                libc.malloc_trim(0)

        threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
        _UNDO.append(stop.set)

    return patch


PATCHES: dict[str, Callable[[], None]] = {
    "malloc-trim": malloc_trim_every(1.0),
    "gate-cpu-2": cpu_gate(2),
    "gate-cpu-1": cpu_gate(1),
    "accept-1": accept_batch(1),
    "accept-4": accept_batch(4),
    "accept-1-gate-2": accept_batch(1, gate(2)),
    "timeline": timeline,
    "gate-2": gate(2),
    "gate-4": gate(4),
    "switch-1ms": switch_interval(0.001),
    "switch-0.5ms": switch_interval(0.0005),
    "switch-20ms": switch_interval(0.020),
    "switch-50ms": switch_interval(0.050),
    "sdk-stream": sdk_stream,
    "httpx2-stream": httpx2_stream,
    "no-query-embedding": no_query_embedding,
    "no-db-writes": no_db_writes,
    "memo-retrieval": memo_retrieval,
}


def chosen(names: str) -> list[str]:
    """The comma-separated variants of `names` (unknown names are an error, not a silent no-op)."""
    variants = [name for name in (n.strip() for n in names.split(",")) if name]
    for name in variants:
        if name not in ENV:
            raise SystemExit(f"unknown bench variant {name!r}; known: {', '.join(ENV)}")
    return variants


def build(names: str, config: Any = None, tuning: Tuning | None = None) -> Flask:
    """The app with the variants `names`: their patches applied, then `create_app(config)` with
    `tuning` (default: the production values) changed as the variants say, then their WSGI wrappers."""
    from app import create_app

    variants = chosen(names)
    for name in variants:
        if name in PATCHES:
            PATCHES[name]()
    changes = {field: value for name in variants for field, value in TUNING.get(name, {}).items()}
    app = create_app(config, replace(tuning or Tuning(), **changes))
    for wrap in _WRAPPERS:
        app.wsgi_app = wrap(app.wsgi_app)  # type: ignore[method-assign]  # WSGI middleware, as Flask documents
    return app


def restore() -> None:
    """Undo every patch (newest first) and forget the WSGI wrappers."""
    while _UNDO:
        _UNDO.pop()()
    _WRAPPERS.clear()


def app_from_env() -> Flask:
    """What gunicorn loads (`bench.variants:app_from_env()`), in each worker: BENCH_VARIANTS on
    the tuning of TEST_TUNING (bench.load's limits and answer cache)."""
    from app import ConfigError

    try:
        return build(os.environ.get("BENCH_VARIANTS", ""), tuning=tuning_from_env())
    except ConfigError as exc:  # as wsgi.py says it
        raise SystemExit(f"Configuration error: {exc}") from None
