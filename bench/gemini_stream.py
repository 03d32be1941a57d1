"""CPU of reading one streamed Gemini answer: the raw SSE reader against google-genai's stream.

    python -m bench.gemini_stream [--answers 200] [--events 40] [--blocks 5]

One thread, no contention: the fake Gemini (its own process, no pacing) streams an answer of
--events SSE events; this process's CPU time (user + system, `time.process_time`) per answer is
measured for the provider's own reader (`current`: urllib3), the same reader over an httpx2
client (`httpx2-stream`, the reader before) and the same provider with the SDK's
`generate_content_stream` (`sdk-stream`; both in bench/variants.py), in alternating blocks so that any
drift in the machine hits both alike. What is measured is what the service does per answer on
the Gemini side: build the request, send it, read and parse every event, close.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from google.genai import types

from bench._common import FAKE_KEY, emit, fake_gemini, machine


def provider(base_url: str):
    """A provider as the service builds it (the default tuning), pointed at the fake."""
    from app.services.providers.gemini import GeminiConfig, GeminiProvider
    from app.tuning import Tuning

    tuning = Tuning()
    return GeminiProvider(
        GeminiConfig(
            api_key=FAKE_KEY,
            model="gemini-3.5-flash",
            embedding_model="gemini-embedding-001",
            embedding_dim=tuning.embedding_dim,
            timeout_seconds=tuning.gemini_timeout_seconds,
            max_attempts=tuning.gemini_max_attempts,
            max_backoff=tuning.gemini_max_retry_wait_seconds,
            base_url=base_url,
        )
    )


def prompt() -> list[types.Content]:
    """A prompt the size of the service's: five passages of ~150 words and a question."""
    passage = " ".join(["The widget streams answers from the book's passages with citations."] * 15)
    text = "\n\n".join(f"[{i}] Page {i}\n{passage}" for i in range(1, 6)) + "\n\nQuestion: How do I deploy?"
    return [types.Content(role="user", parts=[types.Part(text=text)])]


def cpu_per_answer(stream_method, target, answers: int) -> float:
    """Milliseconds of this process's CPU per streamed answer."""
    contents = prompt()
    started = time.process_time()
    for _ in range(answers):
        text = "".join(
            stream_method(target, contents, system_instruction="Be grounded.", max_output_tokens=1024)
        )
        assert text
    return (time.process_time() - started) / answers * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=200, help="answers per block")
    parser.add_argument("--events", type=int, default=40, help="SSE events per answer")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks per reader")
    args = parser.parse_args(argv)

    from app.services.providers import gemini

    raw_stream = gemini.GeminiProvider.stream
    import bench.variants as variants

    variants.sdk_stream()
    sdk_stream_method = gemini.GeminiProvider.stream
    gemini.GeminiProvider.stream = (
        raw_stream  # the class keeps the raw reader; each method is called explicitly
    )
    urllib3_reader = gemini.read_pieces
    variants.httpx2_stream()
    httpx2_reader, gemini.read_pieces = gemini.read_pieces, urllib3_reader

    def over_httpx2(target, contents, **options):
        gemini.read_pieces = httpx2_reader
        try:
            yield from raw_stream(target, contents, **options)
        finally:
            gemini.read_pieces = urllib3_reader

    words = " ".join(f"w{i}" for i in range(args.events * 5))
    readers = {"current": raw_stream, "httpx2-stream": over_httpx2, "sdk-stream": sdk_stream_method}
    results: dict[str, list[float]] = {name: [] for name in readers}
    with fake_gemini("--chunk-words", "5", "--reply-text", words) as fake:
        target = provider(fake.base_url)
        for method in readers.values():  # warm-up: connection, imports, caches
            cpu_per_answer(method, target, 5)
        for _ in range(args.blocks):
            for name, method in readers.items():
                results[name].append(cpu_per_answer(method, target, args.answers))
    rows = []
    summary = {}
    for name, values in results.items():
        median = statistics.median(values)
        summary[name] = {
            "ms_per_answer_median": round(median, 3),
            "blocks": [round(v, 3) for v in values],
            "us_per_event": round(median / args.events * 1000, 1),
        }
        rows.append(
            [
                name,
                round(median, 2),
                f"{min(values):.2f} – {max(values):.2f}",
                round(median / args.events * 1000, 1),
            ]
        )
    emit(
        f"CPU per streamed Gemini answer ({args.events} events, one thread, {args.blocks} × {args.answers} "
        "answers each)",
        ["reader", "ms/answer (median of blocks)", "range", "µs/event"],
        rows,
        {"bench": "gemini_stream", "machine": machine(), "events": args.events, "results": summary},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
