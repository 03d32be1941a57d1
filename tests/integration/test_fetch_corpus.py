"""scripts/fetch_corpus.py: uses a corpus that is there, says what it would fetch, and fetches
only the pages of the pinned folder (from a local git repository: no network in tests)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, ROOT

SCRIPT = ROOT / "scripts" / "fetch_corpus.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit(source: Path, message: str) -> str:
    git("add", "-A", cwd=source)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", message, cwd=source)
    return git("rev-parse", "HEAD", cwd=source)


def test_a_corpus_that_is_there_is_used_and_nothing_is_fetched(tmp_path):
    (tmp_path / "docs" / "guides").mkdir(parents=True)
    (tmp_path / "docs" / "guides" / "intro.mdx").write_text("# Intro\n")

    result = run_script("--dest", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"corpus present: {tmp_path / 'docs'} (nothing fetched)"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["docs", "guides", "intro.mdx"]


def test_a_missing_corpus_dry_run_prints_the_pinned_fetch(tmp_path):
    fetch_corpus = load_script()
    dest = tmp_path / "corpus"

    result = run_script("--dest", str(dest), "--dry-run")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"corpus missing at {dest}; would run:"
    assert lines[1:6] == [
        "  git init --quiet '<scratch>/checkout'",
        "  git -C '<scratch>/checkout' remote add origin https://github.com/facebook/docusaurus.git",
        "  git -C '<scratch>/checkout' sparse-checkout set --no-cone /website/docs/",
        "  git -C '<scratch>/checkout' fetch --quiet --depth 1 --filter=blob:none origin "
        + fetch_corpus.COMMIT,
        "  git -C '<scratch>/checkout' checkout --quiet FETCH_HEAD",
    ]
    assert not dest.exists()


def test_fetch_checks_out_the_pinned_commit_and_keeps_only_pages_and_categories(tmp_path):
    source = tmp_path / "docusaurus"
    docs = source / "website" / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "intro.mdx").write_text("# Intro\n")
    (docs / "guides" / "_category_.yml").write_text("label: Guides\n")
    (docs / "guides" / "tabs.md").write_text("## Tabs\n")
    (docs / "guides" / "demo.png").write_bytes(b"\x89PNG")
    (source / "README.md").write_text("not docs\n")
    git("init", "--quiet", cwd=source)
    pinned = commit(source, "pinned")
    (docs / "later.mdx").write_text("# Later\n")  # a later commit must not leak in
    commit(source, "later")
    git("config", "uploadpack.allowFilter", "true", cwd=source)
    git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=source)
    fetch_corpus = load_script()
    dest = tmp_path / "shared" / "corpora" / "docusaurus-docs"

    copied = fetch_corpus.fetch(dest, repository=source.as_uri(), commit=pinned)

    assert copied == 3
    assert sorted(path.relative_to(dest).as_posix() for path in dest.rglob("*") if path.is_file()) == [
        "SOURCE.md",
        "docs/guides/_category_.yml",
        "docs/guides/tabs.md",
        "docs/intro.mdx",
    ]
    assert f"Commit: `{pinned}`" in (dest / "SOURCE.md").read_text()
    assert fetch_corpus.corpus_present(dest)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}: run scripts/fetch_corpus.py")
def test_the_shared_corpus_is_the_commit_the_script_pins():
    assert load_script().COMMIT in (CORPUS / "SOURCE.md").read_text()
