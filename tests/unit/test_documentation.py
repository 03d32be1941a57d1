"""The README and the user guide name every setting the service reads."""

import pytest

from app.config import Settings
from tests.conftest import ROOT

SETTINGS = sorted(name.upper() for name in Settings.model_fields)


@pytest.mark.parametrize("document", ["README.md", "docs/configuration.md"])
def test_every_setting_is_documented(document):
    text = (ROOT / document).read_text()
    missing = [name for name in SETTINGS if f"`{name}`" not in text]
    assert not missing, f"{document} does not document {missing}"


def test_the_readme_stays_short():
    # Issue 13: what it is, the two commands, configuration, API, deployment, links; measurements
    # live in bench/README.md and guides in docs/.
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 12_000, f"README.md is {size} bytes; move detail to docs/ or bench/README.md"


@pytest.mark.parametrize("document", ["README.md", "docs/configuration.md"])
def test_no_removed_setting_is_documented_as_a_variable(document):
    # Tuning values that became constants must not be offered as environment variables.
    removed = ["GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT", "GUNICORN_MAX_REQUESTS",
               "GUNICORN_ACCESSLOG", "HEALTH_CACHE_SECONDS", "ANSWER_CACHE_SIZE", "DATABASE_POOL_SIZE",
               "GEMINI_TIMEOUT_SECONDS", "GEMINI_EMBEDDING_DIM", "RETRIEVAL_TOP_K", "OFFLINE_TOKEN_DELAY_MS",
               "SSE_KEEPALIVE_SECONDS", "QDRANT_PATH"]
    text = (ROOT / document).read_text()
    assert [name for name in removed if f"`{name}`" in text] == []
