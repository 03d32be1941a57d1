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
    removed = [
        "GUNICORN_THREADS",
        "GUNICORN_TIMEOUT",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "GUNICORN_MAX_REQUESTS",
        "GUNICORN_ACCESSLOG",
        "HEALTH_CACHE_SECONDS",
        "ANSWER_CACHE_SIZE",
        "DATABASE_POOL_SIZE",
        "GEMINI_TIMEOUT_SECONDS",
        "GEMINI_EMBEDDING_DIM",
        "RETRIEVAL_TOP_K",
        "OFFLINE_TOKEN_DELAY_MS",
        "SSE_KEEPALIVE_SECONDS",
        "QDRANT_PATH",
    ]
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


# --- the code map in the design notes ------------------------------------------------------------

CODE_MAP_DOC = ROOT / "docs/getting-started/design-notes.md"
_ENTRY = re.compile(r"^(?P<indent> *)(?P<name>\S+)(?: {2,}(?P<text>.*))?$")
# A file or folder named in a description; not a URL path (/api/chat, /widget.js).
_NAMED = re.compile(r"(?<![/\w.-])(?:[\w.-]+\.(?:py|html|js|css)\b|\w[\w.-]*/)")
_MAX_INDENT = 8  # deeper lines continue the description above them


def code_map() -> dict[str, list[str]]:
    """Each path the code map names (its entries, and the files and folders their descriptions
    name, relative to the entry's folder) → the map's lines that name it."""
    text = CODE_MAP_DOC.read_text()
    block = re.search(r"## How it is built\n+```text\n(.*?)```", text, re.S)
    assert block, "design-notes.md: the code map (a ```text block under 'How it is built') is missing"
    named: dict[str, list[str]] = {}
    folders: list[str] = []  # the folder of each indent level
    here = ""  # the folder the current entry's description speaks of
    for line in block.group(1).splitlines():
        match = _ENTRY.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip():
            continue
        if indent <= _MAX_INDENT:
            assert match, f"code map: {line!r} is not `name  description`"
            assert indent % 2 == 0, f"code map: odd indent in {line!r}"
            folders = folders[: indent // 2]
            path = "".join(folders) + match["name"]
            named.setdefault(path.rstrip("/"), []).append(line)
            if path.endswith("/"):
                folders.append(match["name"])
            here = path if path.endswith("/") else "".join(folders)
            description = match["text"] or ""
        else:
            description = line
        for name in _NAMED.findall(description):
            named.setdefault((here + name).rstrip("/"), []).append(line)
    return named


def test_every_path_the_code_map_names_exists():
    named = code_map()
    assert "app/services/chat_turn.py" in named  # the parser reads nesting
    missing = {path: lines[0].strip() for path, lines in named.items() if not (ROOT / path).exists()}
    assert missing == {}, "design-notes.md's code map names paths that do not exist"


def test_the_code_map_names_every_module_down_to_the_services():
    named = code_map()
    app = ROOT / "app"
    wanted = [
        path
        for folder in (app, app / "api", app / "services")
        for path in folder.iterdir()
        if path.suffix == ".py" and path.name != "__init__.py" or path.is_dir() and path.name != "__pycache__"
    ]
    missing = sorted(
        str(path.relative_to(ROOT)) for path in wanted if str(path.relative_to(ROOT)) not in named
    )
    assert missing == [], "design-notes.md's code map does not name these; add them"


def test_the_metrics_table_lists_every_metric_the_service_exports():
    from prometheus_client.metrics import MetricWrapperBase

    from app.observability import metrics

    exported = {
        f"{metric._name}_total" if metric._type == "counter" else metric._name
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    table = re.findall(
        r"^\| `(\w+)` \| (?:counter|gauge|histogram) \|",
        (ROOT / "docs/operations/metrics.md").read_text(),
        re.M,
    )
    assert sorted(table) == sorted(exported), (
        "docs/operations/metrics.md's table and app/observability/metrics.py disagree"
    )
