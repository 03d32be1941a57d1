"""The README and the user guide name every setting the service reads, and show the events the
service sends."""

import json
import re

import pytest
from pydantic import ValidationError

from app.api.schemas import ChatEvent
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


ABBREVIATED = re.compile(r'"(?:…|\.\.\.)"|\[(?:…|\.\.\.)\]|, …}')


def test_every_whole_stream_event_shown_is_one_the_schema_names():
    # An event shown whole must be exactly what the service may send: no field the schema does
    # not name, none it requires missing. Abbreviated ones ("sources": [...], "id": "…") are skipped.
    shown = []
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, line in enumerate(document.read_text().splitlines(), 1):
            if line.startswith("data: {") and not ABBREVIATED.search(line):
                event = json.loads(line.removeprefix("data: "))
                shown.append(f"{document.relative_to(ROOT)}:{number}")
                try:
                    ChatEvent.model_validate(event, extra="forbid")
                except ValidationError as exc:
                    pytest.fail(f"{shown[-1]} shows an event the service does not send: {exc}")
    assert len(shown) >= 10
