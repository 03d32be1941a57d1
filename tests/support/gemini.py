"""A Gemini provider pointed at the fake Gemini server, with test-sized waits."""

from __future__ import annotations

from app.services.providers.gemini import GeminiConfig, GeminiProvider
from app.tuning import Tuning


def provider_for(fake, key: str, waits: list[float] | None = None, **overrides) -> GeminiProvider:
    """A provider for `fake` (tests/fakes/gemini_server.py) whose back-off pauses are recorded in
    `waits` instead of slept; `overrides` are GeminiConfig fields (short timeouts by default)."""
    tuning = Tuning()
    config = GeminiConfig(
        api_key=overrides.pop("api_key", key),
        model="gemini-3.5-flash",
        embedding_model="gemini-embedding-001",
        embedding_dim=tuning.embedding_dim,
        base_url=fake.base_url,
        timeout_seconds=overrides.pop("timeout_seconds", 5.0),
        max_attempts=overrides.pop("max_attempts", tuning.gemini_max_attempts),
        initial_backoff=0.01,
        max_backoff=overrides.pop("max_backoff", 0.05),
        **overrides,
    )
    return GeminiProvider(config, sleep=(waits if waits is not None else []).append)
