"""CPU of the small parts of an answer, one thread, no contention: what each lever could save.

    python -m bench.cpu_parts [--events 40] [--repeat 300]

Each part is timed with this process's CPU clock (`time.process_time`), per answer of --events
token events, median of 5 blocks:

- sse framing: `frame()` of every event of one answer (metadata, tokens, done).
- keep-alive thread: `sse_stream` with keep-alive on (a producer thread and a queue per stream)
  minus keep-alive off (framed inline), over the same ready events.
- log lines: the request line and the chat line of one answer through the JSON formatter into
  a file (stdout is a pipe in production; a file is the nearest cheap sink).
- query embedding: the service's `embed_query` against the fake Gemini (own process, answers
  at once), 768 dimensions: the SDK's request sent through urllib3's pool, the reply read with
  json.loads. Next to it, for comparison, the same call through google-genai's models and the
  same raw request through the SDK's httpx2 client (what the service did before).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._common import emit, fake_gemini, machine

BLOCKS = 5


def per_call_ms(work: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    """Median over blocks of CPU milliseconds per call, and the blocks."""
    work()  # warm-up
    blocks = []
    for _ in range(BLOCKS):
        started = time.process_time()
        for _ in range(repeat):
            work()
        blocks.append((time.process_time() - started) / repeat * 1000)
    return statistics.median(blocks), blocks


def answer_events(events: int) -> list[dict]:
    """The widget events of one answer: metadata, tokens of five words, done with five sources."""
    # Events as ChatTurn yields them: frame() sends each through its schema, which refuses others.
    source = {
        "file": "docs/deploy.md",
        "heading": "Deploying > To a Space",
        "similarity": 0.71,
        "url": "https://book.example.com/docs/deploy#space",
        "title": "Deploying",
        "snippet": "x" * 200,
    }
    ids = {
        "conversation_id": "5b0d7c1e-0000-4000-8000-000000000000",
        "message_id": "5b0d7c1e-0000-4000-8000-000000000001",
    }
    return (
        [{"type": "metadata", **ids}]
        + [{"type": "token", "content": "words of the answer here "} for _ in range(events)]
        + [
            {
                "type": "done",
                "sources": [source] * 5,
                "grounded": True,
                **ids,
                "cached": False,
                "answerer": "offline",
                "format": "text",
            }
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=300, help="answers per block")
    args = parser.parse_args(argv)

    from app.api.sse import frame, sse_stream
    from app.logging_setup import JsonFormatter

    events = answer_events(args.events)
    rows: list[list[object]] = []
    results: dict[str, dict] = {}

    def record(name: str, median: float, blocks: list[float], note: str) -> None:
        results[name] = {"ms_per_answer": round(median, 3), "blocks": [round(b, 3) for b in blocks]}
        rows.append([name, f"{median:.3f}", f"{min(blocks):.3f} – {max(blocks):.3f}", note])

    record(
        "sse framing", *per_call_ms(lambda: [frame(e) for e in events], args.repeat), f"{len(events)} events"
    )

    def generate():  # a generator, as ChatTurn.events() is (sse_stream closes it)
        yield from events

    inline, inline_blocks = per_call_ms(lambda: list(sse_stream(generate(), 0)), args.repeat)
    threaded, threaded_blocks = per_call_ms(lambda: list(sse_stream(generate(), 15.0)), args.repeat)
    record("sse_stream, keep-alive off", inline, inline_blocks, "framed inline")
    record(
        "sse_stream, keep-alive on",
        threaded,
        threaded_blocks,
        f"+{threaded - inline:.3f} ms: a thread and a queue per stream",
    )

    with tempfile.TemporaryDirectory() as tmp:
        handler = logging.FileHandler(Path(tmp) / "log.jsonl")
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("bench.cpu_parts")
        logger.propagate = False
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        request_fields = {
            "event": "request",
            "request_id": "ab" * 16,
            "method": "POST",
            "route": "/api/chat",
            "status": 200,
            "duration_ms": 12.3,
        }
        chat_fields = {
            "event": "chat",
            "request_id": "ab" * 16,
            "conversation_id": "c" * 36,
            "message_id": "m" * 36,
            "mode": "general",
            "status": "complete",
            "answerer": "gemini:gemini-3.5-flash",
            "cached": False,
            "grounded": True,
            "passages": 5,
            "retrieval_ms": 3,
            "first_token_ms": 310,
            "total_ms": 1150,
            "prompt_tokens": 900,
            "completion_tokens": 200,
            "store_ms": 2,
        }

        def two_lines() -> None:
            logger.info("POST /api/chat 200", extra={"fields": request_fields})
            logger.info("chat turn", extra={"fields": chat_fields})

        record("log lines", *per_call_ms(two_lines, args.repeat), "request + chat line, JSON")
        handler.close()

    from bench.gemini_stream import provider

    with fake_gemini() as fake:
        target = provider(fake.base_url)
        question = "How do I deploy to Spaces?"
        record(
            "query embedding (the service's: urllib3)",
            *per_call_ms(lambda: target.embed_query(question), max(20, args.repeat // 10)),
            "768 dims, over HTTP",
        )
        # For comparison only: through the SDK's models, and the raw request over httpx2.
        import json as json_module

        from google.genai import types

        from app.services.providers.gemini import _unit

        config = types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=768)

        def sdk_embed() -> list[float]:
            response = target.client.models.embed_content(
                model="gemini-embedding-001", contents=[question], config=config
            )
            return _unit(list(response.embeddings[0].values or []))

        record(
            "query embedding (google-genai)", *per_call_ms(sdk_embed, max(20, args.repeat // 10)), "not used"
        )

        url = f"{fake.base_url}/v1/models/gemini-embedding-001:batchEmbedContents"
        headers = {"Content-Type": "application/json", "x-goog-api-key": target.config.api_key}

        def raw_embed() -> list[float]:
            body = {
                "requests": [
                    {
                        "content": {"parts": [{"text": "How do I deploy to Spaces?"}], "role": "user"},
                        "taskType": "RETRIEVAL_QUERY",
                        "outputDimensionality": 768,
                        "model": "models/gemini-embedding-001",
                    }
                ]
            }
            response = target.http.post(url, content=json_module.dumps(body), headers=headers)
            return _unit(response.json()["embeddings"][0]["values"])

        record(
            "query embedding (raw, httpx2)",
            *per_call_ms(raw_embed, max(20, args.repeat // 10)),
            "not used since urllib3",
        )

    emit(
        f"CPU of the parts of one answer ({args.events} token events; one thread; median of {BLOCKS} blocks)",
        ["part", "ms/answer", "range", "note"],
        rows,
        {"bench": "cpu_parts", "machine": machine(), "events": args.events, "results": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
