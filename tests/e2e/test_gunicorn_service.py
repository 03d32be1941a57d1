"""End to end: a real gunicorn (2 workers) serving the project's own docs/, driven over HTTP
and parsed exactly as the widget parses (split the byte stream on \\n, keep `data: ` lines).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests

from app.tuning import Tuning
from tests.conftest import ROOT, TEST_DATABASE_URL, reset_postgres
from tests.support.service import (
    GUNICORN,
    NO_HEALTH_CACHE,
    Service,
    chat_then_leave,
    free_port,
    service_env,
    text_of,
    typing_pace,
    widget_chat,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    if TEST_DATABASE_URL:
        reset_postgres(TEST_DATABASE_URL)  # a fresh database: start-up must migrate it by itself
    svc = Service(
        tmp_path_factory.mktemp("svc"),
        tuning=Tuning(**typing_pace(20), **NO_HEALTH_CACHE),
        RATE_LIMIT_CHAT="10000/minute",  # these tests send many chats from one address
    )
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


def test_health_is_200_with_every_service_up(service):
    body = requests.get(f"{service.url}/api/health", timeout=5).json()
    assert body["status"] == "healthy"
    assert {name for name, s in body["services"].items() if s["state"] == "up"} >= {
        "database",
        "index",
        "answerer",
    }
    assert requests.get(f"{service.url}/api/health/live", timeout=5).status_code == 200


def test_widget_chat_round_trip_on_the_projects_own_docs(service):
    events = widget_chat(service.url, {"message": "How do I deploy to Hugging Face Spaces?"})
    assert [events[0]["type"], events[-1]["type"]] == ["metadata", "done"]
    assert all(e["type"] == "token" for e in events[1:-1]) and len(events) > 3
    sources = events[-1]["sources"]
    assert sources, "an answer about this project cites the project's docs"
    for source in sources:
        assert (ROOT / "docs" / source["file"]).is_file()
        assert {"file", "heading", "similarity"} <= set(source)

    cid = events[0]["conversation_id"]
    stored = requests.get(f"{service.url}/api/conversation/{cid}", timeout=5).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == text_of(events) and stored[1]["sources"] == sources

    follow_up = widget_chat(
        service.url, {"message": "And which variables must I set?", "conversation_id": cid}
    )
    assert follow_up[0]["conversation_id"] == cid
    assert len(requests.get(f"{service.url}/api/conversation/{cid}", timeout=5).json()["messages"]) == 4


@pytest.mark.parametrize(
    "question",
    [
        "How do I deploy to Hugging Face Spaces?",
        "Which variables configure the service?",
        "What is the answer cache?",
    ],
)
def test_the_widget_gets_plain_prose_citing_exactly_its_sources(service, question):
    events = widget_chat(service.url, {"message": question})  # no format: what the widget sends
    text, done = text_of(events), events[-1]
    # Reads as one text node: no Markdown markers, no bullets or tables, no line structure needed.
    assert not re.search(r"\*\*|`|^\s*(?:[-*+]|\d+\.)\s|^\s*#|\||\]\(", text, re.MULTILINE), text
    assert done["format"] == "text" and done["answerer"] == "offline"
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", text)]
    assert cited and sorted(set(cited)) == list(range(1, len(done["sources"]) + 1)), (text, done["sources"])
    assert [n for i, n in enumerate(cited) if n not in cited[:i]] == sorted(set(cited))  # order of appearance
    for cited_part in re.split(r"(?<=\]\.)\s+", text.strip()):
        # Every sentence ends with its citation: no uncited sentence end inside a cited part.
        assert cited_part.endswith("].") and not re.search(
            r"(?<!\be\.g)(?<!\bi\.e)[\w)]\.\s+[A-Z]", cited_part
        ), cited_part


def test_selection_mode_and_bad_requests(service):
    selection = "ALLOWED_ORIGINS is a comma-separated list of origins that may call the API from a browser."
    events = widget_chat(
        service.url, {"message": "What does this mean?", "mode": "selection", "context": selection}
    )
    assert "comma-separated" in text_of(events)
    assert events[-1]["type"] == "done"

    chat = f"{service.url}/api/chat"
    assert requests.post(chat, json={"message": "hi", "mode": "selection"}, timeout=5).status_code == 422
    unknown = requests.post(
        chat, json={"message": "hi", "conversation_id": "8d0b4c1e-1f0a-4d8e-9d5e-2f7a3b9c4d11"}, timeout=5
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert requests.post(chat, json={"message": "hi", "conversation_id": "42"}, timeout=5).status_code == 422
    assert requests.get(f"{service.url}/api/conversation/42", timeout=5).status_code == 422


def test_disconnect_mid_stream_stores_the_turn_as_interrupted(service):
    cid = chat_then_leave(service.port, "How do I configure the service? List every variable.")

    def stored_answer_once_no_longer_streaming():
        answer = requests.get(f"{service.url}/api/conversation/{cid}", timeout=5).json()["messages"][1]
        return answer if answer["status"] != "streaming" else None

    answer = wait_until(stored_answer_once_no_longer_streaming, timeout=20, interval=0.2)
    assert answer["status"] == "interrupted"
    assert answer["content"], "the text streamed before the disconnect is kept"


def test_root_and_cors_preflight(service):
    assert requests.get(service.url, timeout=5).json()["service"]
    preflight = requests.options(
        f"{service.url}/api/chat",
        timeout=5,
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"


@pytest.mark.parametrize(
    "command", [GUNICORN, [sys.executable, "-m", "flask", "ingest"]], ids=["gunicorn", "flask"]
)
def test_malformed_database_url_stops_start_up_with_one_line(tmp_path, command):
    env = service_env(
        tmp_path, DATABASE_URL="postgresql://user:hunter22@/nodb", PORT=str(free_port()), FLASK_APP="wsgi"
    )
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "DATABASE_URL" in lines[0], output
    assert "hunter22" not in output


def test_full_rebuild_while_serving_fails_no_query(service):
    """`flask ingest --full` builds a new version beside the live one; workers switch without a restart."""
    import threading

    def index_version():
        return requests.get(f"{service.url}/api/health", timeout=5).json()["services"]["index"]["version"]

    before = index_version()
    statuses: list[int] = []
    stop = threading.Event()

    def ask_forever():
        while not stop.is_set():
            response = requests.post(
                f"{service.url}/api/chat",
                json={"message": "How do I configure CORS?"},
                headers={"Accept": "application/json"},
                timeout=30,
            )
            statuses.append(response.status_code)

    askers = [threading.Thread(target=ask_forever) for _ in range(3)]
    for t in askers:
        t.start()
    try:
        rebuild = subprocess.run(
            [sys.executable, "-m", "flask", "ingest", "--full", "--json"],
            cwd=ROOT,
            env={**service.env, "FLASK_APP": "wsgi"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rebuild.returncode == 0, rebuild.stderr
        new_version = json.loads(rebuild.stdout.strip().splitlines()[-1])["version"]
        assert new_version != before
        # Readers re-check the pointer every second; both workers (either answers health) switch.
        wait_until(lambda: {index_version() for _ in range(6)} == {new_version}, timeout=10, interval=0.2)
    finally:
        stop.set()
        for t in askers:
            t.join()
    assert statuses and set(statuses) == {200}, statuses
