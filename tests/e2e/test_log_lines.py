"""With LOG_FORMAT=json (the default) every line gunicorn and the app write is one JSON object:
gunicorn's own lines ("Listening at", "Booting worker", its access log), the app's, start to stop."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.service import Service, widget_chat

pytestmark = pytest.mark.e2e


def test_every_line_from_start_to_stop_is_json(tmp_path):
    service = Service(tmp_path, WEB_CONCURRENCY="1", GUNICORN_CMD_ARGS="--access-logfile -")
    try:
        service.wait_healthy(in_a_row=1)
        assert (
            widget_chat(service.url, {"message": "How do I deploy to Hugging Face Spaces?"})[-1]["type"]
            == "done"
        )
        assert requests.get(f"{service.url}/no-such-page", timeout=5).status_code == 404
    finally:
        service.stop()
    lines = service.log_path.read_text().splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    messages = [entry["message"] for entry in entries]
    for expected in ("Listening at", "Booting worker", "Shutting down", '"POST /api/chat HTTP/1.1" 200'):
        assert any(expected in message for message in messages), (expected, messages)
    assert {"gunicorn.error", "gunicorn.access"} <= {entry["logger"] for entry in entries}
