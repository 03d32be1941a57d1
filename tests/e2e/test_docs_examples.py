"""Every `curl` example in README.md and docs/ runs against a live service and shows what it says.

The service is the real gunicorn with the offline answerer and this project's docs/ indexed, as
`make run` starts it. Each ```bash / ```sh / ```console block with `curl` in it runs in bash, with
the host and port replaced by the service's. What the doc shows next to the command (the output
lines in the same block, or the ```http / ```json / ```text blocks after it, up to the next
command or heading other than "Response") is the expected shape: the status, the headers, the JSON
keys and the SSE event types with their keys. Values are not compared: answers and ids differ from run to run.

Ids: when an example shows an id (`conversation_id`, `message_id`) and the service returns
another, later examples that use the shown id get the real one, so a doc can show a
conversation and then read it back. A `<conversation_id>` / `<message_id>` / `<id>` placeholder
gets the latest real one. Examples against a deployed Space are skipped, each listed in SKIPPED.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from app.tuning import Tuning
from tests.support.service import METRICS_TOKEN, NO_HEALTH_CACHE, NO_LIMITS, ROOT, Service

pytestmark = pytest.mark.e2e

SHELL_LANGS = {"bash", "sh", "console", "shell"}
SHOWN_LANGS = {"http", "json", "text", ""}
LOCAL_URL = re.compile(r"(?:https?://)?localhost:\d+")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ID_KEYS = ("conversation_id", "message_id")
# Examples that cannot run here, by (file, text the example contains): why.
SKIPPED = {
    (
        "docs/operations/troubleshooting.md",
        ".hf.space",
    ): "talks to a deployed Space (https://<owner>-<space>.hf.space)",
    (
        "docs/deployment/hugging-face-spaces.md",
        ".hf.space",
    ): "talks to a deployed Space (https://<owner>-<space>.hf.space)",
}


@dataclass
class Example:
    """One shell block with curl in it, and what its doc shows next to it."""

    file: str
    line: int
    command: str
    shown: list[tuple[str, str]] = field(default_factory=list)  # (kind: http/json/sse/text, text)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def doc_files() -> list[Path]:
    """README first, then the book in path order (chat.md shows ids that conversations.md reads)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def split_block(text: str) -> tuple[str, str]:
    """(the commands, the output shown in the same block): a line continues a command after a
    trailing backslash or pipe, or inside an open single quote; other lines that look like output
    (`data: `, JSON, a status line) are output."""
    commands, output = [], []
    continuing = False
    for line in text.splitlines():
        if continuing or not re.match(r"\s*(data: |[{}\[\]]|HTTP/|…)", line):
            commands.append(line.removeprefix("$ "))
            joined = "\n".join(commands)
            continuing = joined.rstrip().endswith(("\\", "|")) or joined.count("'") % 2 == 1
        else:
            output.append(line)
    return "\n".join(commands).strip(), "\n".join(output).strip()


def shown_kind(lang: str, text: str) -> str:
    if lang == "http" or text.startswith("HTTP/"):
        return "http"
    if re.search(r"^data: ", text, re.MULTILINE):
        return "sse"
    return "json" if text.lstrip().startswith(("{", "[")) else "text"


def collect_examples() -> list[Example]:
    """Every curl example of README.md and docs/, with what its doc shows next to it."""
    examples = []
    for path in doc_files():
        tokens = MarkdownIt().parse(path.read_text(encoding="utf-8"))
        current: Example | None = None
        for index, token in enumerate(tokens):
            if token.type == "heading_open" and tokens[index + 1].content.strip() != "Response":
                current = None  # a heading ends what an example shows ("## Request", "## Response" excepted)
            if token.type != "fence":
                continue
            lang = token.info.strip().split()[0] if token.info.strip() else ""
            if lang in SHELL_LANGS:
                current = None
                if re.search(r"\bcurl\b", token.content):
                    command, output = split_block(token.content)
                    current = Example(str(path.relative_to(ROOT)), token.map[0] + 1, command)
                    if output:
                        current.shown.append((shown_kind("", output), output))
                    examples.append(current)
            elif current is not None and lang in SHOWN_LANGS:
                current.shown.append((shown_kind(lang, token.content), token.content))
    return examples


EXAMPLES = collect_examples()


def skip_reason(example: Example) -> str | None:
    for (file, marker), reason in SKIPPED.items():
        if example.file == file and marker in example.command:
            return reason
    return None


def test_every_example_is_run_or_listed_as_skipped():
    assert len(EXAMPLES) >= 15, [e.id for e in EXAMPLES]
    for example in EXAMPLES:
        urls = re.findall(r"https?://\S+|localhost:\d+", example.command)
        assert urls, f"{example.id}: no URL in the example"
        if not LOCAL_URL.search(example.command):
            assert skip_reason(example), f"{example.id} calls {urls[0]}: run it locally or list it in SKIPPED"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(
        tmp_path_factory.mktemp("docs"),
        tuning=Tuning(**NO_HEALTH_CACHE, **NO_LIMITS),
        RATE_LIMIT_CHAT="10000/minute",
    )
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def real_ids() -> dict[str, str]:
    """Shown id -> the real id the service returned in its place; '<key>' -> the latest real one."""
    return {}


def keys_of(text: str) -> set[str]:
    """Every object key at any depth of a shown or real JSON text; by pattern when the doc
    abridges it (`…`) so that it does not parse."""
    try:
        value = json.loads(text)
    except ValueError:
        return set(re.findall(r'"(\w+)"\s*:', text))
    keys: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys |= set(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return keys


def events_of(text: str) -> dict[str, set[str]]:
    """SSE event type -> the keys of its events, from the `data: ` lines."""
    events: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            kind = re.search(r'"type"\s*:\s*"(\w+)"', data)
            assert kind, f"an event without a type: {line}"
            events.setdefault(kind.group(1), set()).update(keys_of(data))
    return events


def learn_ids(shown: str, real: str, real_ids: dict[str, str]) -> None:
    for key in ID_KEYS:
        shown_id = re.search(rf'"{key}"\s*:\s*"({UUID})"', shown)
        real_id = re.search(rf'"{key}"\s*:\s*"({UUID})"', real)
        if real_id:
            real_ids[f"<{key}>"] = real_id.group(1)
            if key == "conversation_id":
                real_ids["<id>"] = real_id.group(1)
            if shown_id and shown_id.group(1) not in real_ids:
                real_ids[shown_id.group(1)] = real_id.group(1)


def run(example: Example, url: str, real_ids: dict[str, str], headers_file: Path) -> tuple[str, list[str]]:
    """Run the example's commands in bash against `url`; (stdout, the last response's head lines)."""
    command = LOCAL_URL.sub(url, example.command)
    for shown_id, real_id in real_ids.items():
        command = command.replace(shown_id, real_id)
    assert not re.search(r"<\w+>", command), f"a placeholder no earlier example gave a value for: {command}"
    command = re.sub(r"\bcurl\b", f"curl -D {headers_file}", command)
    # $METRICS_TOKEN in an example is the operator's token: the tested service's.
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, env=env)
    head = headers_file.read_text().splitlines() if headers_file.exists() else []
    statuses = [i for i, line in enumerate(head) if line.startswith("HTTP/")]
    assert statuses, f"no response:\n$ {command}\n{result.stdout}{result.stderr}"
    return result.stdout, [line.strip() for line in head[statuses[-1] :] if line.strip()]


def expected_status(example: Example) -> range:
    """The status the doc shows (a status line, or an error body's `status`); else any 2xx."""
    for kind, text in example.shown:
        if kind == "http":
            return range(int(text.split()[1]), int(text.split()[1]) + 1)
        if kind == "json":
            match = re.search(r'"status"\s*:\s*(\d{3})\b', text)
            if match and '"error"' in text:
                return range(int(match.group(1)), int(match.group(1)) + 1)
    return range(200, 300)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_shows_what_the_service_does(example, service, real_ids, tmp_path):
    reason = skip_reason(example)
    if reason:
        pytest.skip(reason)
    stdout, head = run(example, service.url, real_ids, tmp_path / "headers")
    status = int(head[0].split()[1])
    assert status in expected_status(example), f"{example.id}: status {status}\n{stdout}"
    body = stdout.split("\r\n\r\n", 1)[-1] if stdout.startswith("HTTP/") else stdout  # curl -i
    assert body.strip(), f"{example.id}: printed nothing"
    header_names = {line.split(":", 1)[0].lower() for line in head[1:]}
    for kind, shown in example.shown:
        if kind == "http":
            shown_names = {line.split(":", 1)[0].lower() for line in shown.splitlines()[1:] if ":" in line}
            assert shown_names <= header_names, f"{example.id}: headers {shown_names - header_names} missing"
        elif kind == "sse":
            real_events, shown_events = events_of(body), events_of(shown)
            for event_type, keys in shown_events.items():
                assert event_type in real_events, f"{example.id}: no {event_type!r} event in\n{body}"
                missing = keys - real_events[event_type]
                assert not missing, f"{example.id}: {event_type} events lack {missing}"
        elif kind == "json":
            missing = keys_of(shown) - keys_of(body)
            assert not missing, f"{example.id}: the response lacks {missing}:\n{body}"
        learn_ids(shown, body, real_ids)
    learn_ids("", body, real_ids)
