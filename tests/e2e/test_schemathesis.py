"""schemathesis against a real gunicorn serving /api/openapi.json: generated valid and invalid
requests for every operation, checked for server errors, undeclared statuses, content types,
headers and response bodies that do not match the published schemas.

Two runs, because POST /api/chat answers in two media types chosen by Accept:
1. no Accept header: answers stream as text/event-stream, each event checked against the schema;
2. Accept: application/json: one JSON answer, whose ids the stateful phase follows (OpenAPI links)
   to GET /api/conversation/{id} and POST /api/feedback.

Bounded (examples per operation, fixed seed) to stay well under a minute; set SCHEMATHESIS_SEED
to explore other inputs, SCHEMATHESIS_MAX_EXAMPLES for more of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.tuning import Tuning
from tests.support.service import NO_LIMITS, Service

pytestmark = [pytest.mark.e2e, pytest.mark.schemathesis]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261126")
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = Service(
        tmp_path_factory.mktemp("schemathesis"),
        # Limits high enough not to turn generated traffic into 429s (rate limits have own tests);
        # a body limit above the schema's largest valid body, so valid data is never a 413.
        RATE_LIMIT_CHAT="100000/minute",
        tuning=Tuning(**NO_LIMITS, max_request_bytes=256 * 1024, health_cache_seconds=1),
    )
    try:
        svc.wait_healthy()
        yield svc
    finally:
        svc.stop()


def run_schemathesis(service: Service, tmp_path: Path, *extra: str) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{service.url}/api/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--request-timeout",
        "30",
        "--wait-for-schema",
        "10",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--no-color",
        *extra,
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    assert "No issues found" in output or " passed" in output, output[-5000:]


def assert_no_unhandled_errors(service: Service) -> None:
    log = service.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-20000:]


def test_streaming_answers_and_every_operation_conform(service, tmp_path):
    run_schemathesis(service, tmp_path, "--phases", "examples,coverage,fuzzing")
    assert_no_unhandled_errors(service)


def test_json_answers_and_linked_operations_conform(service, tmp_path):
    run_schemathesis(service, tmp_path, "--header", "Accept: application/json")
    assert_no_unhandled_errors(service)
