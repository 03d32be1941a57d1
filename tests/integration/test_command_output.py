"""Every `flask` command's stdout holds only what it promises; its log lines go to stderr.

Run as a reader runs them: `flask` in a fresh process, logging at DEBUG so that any log line
that lands on stdout shows up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_BOOK, ROOT
from tests.support.service import base_env


@pytest.fixture
def flask_command(tmp_path: Path, database_url: str):
    """Run `flask <args>` on the fixture book and a fresh database; the CompletedProcess."""
    env = base_env(
        tmp_path / "instance", DOCS_PATH=str(FIXTURE_BOOK), DATABASE_URL=database_url, LOG_LEVEL="DEBUG"
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result

    return run


def test_ingest_dry_run_prints_one_json_line_per_chunk_and_nothing_else(flask_command):
    result = flask_command("ingest", "--dry-run")
    chunks = [json.loads(line) for line in result.stdout.splitlines()]
    assert chunks and all(set(chunk) == {"file", "url", "heading", "anchor", "tokens"} for chunk in chunks)


def test_report_json_prints_one_json_document(flask_command):
    flask_command("db", "upgrade")
    result = flask_command("report", "--json")
    assert isinstance(json.loads(result.stdout), dict)


def test_routes_prints_the_table_only(flask_command):
    lines = flask_command("routes").stdout.splitlines()
    assert lines[0].split()[:2] == ["Endpoint", "Methods"]
    assert any("/api/chat" in line for line in lines)
    assert not [line for line in lines if line.lstrip().startswith("{")]


def test_ingest_prints_its_summary_line_only(flask_command):
    result = flask_command("ingest")
    (summary,) = result.stdout.splitlines()
    assert re.fullmatch(r"\d+ files, \d+ chunks: \d+ added, .*; version \S+", summary), summary
    assert result.stderr.strip(), "its progress is logged, on stderr"
