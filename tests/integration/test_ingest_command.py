"""`flask ingest`: dry runs, summaries, incremental re-indexing, and the real Docusaurus corpus."""

import json
import shutil

import pytest

from app import create_app
from tests.conftest import CORPUS, FIXTURE_BOOK
from tests.support.waiting import wait_until


@pytest.fixture
def book(tmp_path):
    copy = tmp_path / "book"
    shutil.copytree(FIXTURE_BOOK, copy)
    return copy


@pytest.fixture
def app(make_settings, book):
    """The app on a copy of the fixture book, nothing indexed yet (`runner` drives its commands)."""
    return create_app(make_settings(docs_path=book, index_on_start=False))


def ingest(runner, *args):
    result = runner.invoke(args=["ingest", *args])
    assert result.exit_code == 0, result.output
    return result.output


def summary(output):
    return json.loads(output.strip().splitlines()[-1])


def test_dry_run_prints_one_json_object_per_chunk_and_changes_nothing(app, runner):
    lines = ingest(runner, "--dry-run").strip().splitlines()
    chunks = [json.loads(line) for line in lines]
    assert chunks and all(set(c) == {"file", "url", "heading", "anchor", "tokens"} for c in chunks)
    herbs = next(c for c in chunks if c["anchor"] == "herbs")
    assert herbs["url"] == "https://garden.example.com/guides/watering#herbs"
    assert herbs["heading"] == "Watering > Watering herbs"
    assert not any(c["file"].startswith("guides/_") for c in chunks)  # partials are not pages
    assert app.extensions["services"].index.count() == 0


def test_summary_and_incremental_re_index(app, runner, book):
    first = summary(ingest(runner, "--json"))
    assert set(first) >= {"files", "chunks", "added", "updated", "removed", "unchanged", "embedding_requests"}
    assert first["files"] == 3 and first["added"] == first["chunks"] > 0

    again = summary(ingest(runner, "--json"))
    assert (again["added"], again["updated"], again["removed"], again["embedding_requests"]) == (0, 0, 0, 0)
    assert again["unchanged"] == first["chunks"] and again["version"] is None

    watering = book / "guides" / "watering.md"
    watering.write_text(watering.read_text().replace("two or three times a week", "every other day"))
    (book / "intro.md").unlink()
    edited = summary(ingest(runner, "--json"))
    assert edited["updated"] == 1 and edited["added"] == 0
    assert edited["removed"] == 2  # the intro page's two sections
    assert edited["unchanged"] == first["chunks"] - 3

    retriever = app.extensions["services"].retriever

    def best_passage_is_the_edited_one() -> bool:
        passages = retriever.retrieve("How often should tomatoes be watered?").passages
        return "every other day" in passages[0].text

    wait_until(best_passage_is_the_edited_one, timeout=5)  # readers follow CURRENT within a second
    assert all(p.file != "intro.md" for p in retriever.retrieve("balcony garden book").passages)


def test_full_rebuild_makes_a_new_version(runner):
    first = summary(ingest(runner, "--json"))
    full = summary(ingest(runner, "--json", "--full"))
    assert full["full"] is True and full["version"] != first["version"]
    assert full["added"] == first["chunks"]


def test_site_url_and_route_base_path_options(runner):
    chunks = [
        json.loads(line)
        for line in ingest(
            runner, "--dry-run", "--site-url", "https://b.example.org/", "--route-base-path", "docs"
        ).splitlines()
    ]
    assert {c["url"].split("#")[0] for c in chunks} >= {
        "https://b.example.org/docs/guides/watering",
        "https://b.example.org/docs/reference/config",  # an absolute slug, under the base path
    }


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"no Docusaurus corpus at {CORPUS}: run `python scripts/fetch_corpus.py`"
)
def test_real_docusaurus_docs_routes_and_anchors(make_settings):
    app = create_app(make_settings(docs_path=CORPUS / "docs", index_on_start=False))
    result = app.test_cli_runner().invoke(
        args=[
            "ingest",
            str(CORPUS / "docs"),
            "--dry-run",
            "--site-url",
            "https://docusaurus.io",
            "--route-base-path",
            "docs",
        ]
    )
    chunks = [json.loads(line) for line in result.output.splitlines()]
    by_file = {}
    for c in chunks:
        by_file.setdefault(c["file"], []).append(c)
    config = by_file["api/docusaurus.config.js.mdx"]
    assert {c["url"].split("#")[0] for c in config} == {"https://docusaurus.io/docs/api/docusaurus-config"}
    assert any(
        c["anchor"] == "scripts" and c["url"].endswith("/docs/api/docusaurus-config#scripts") for c in config
    )
    tabs = by_file["guides/markdown-features/markdown-features-tabs.mdx"][0]
    assert tabs["url"].startswith("https://docusaurus.io/docs/markdown-features/tabs")
    assert by_file["api/plugin-methods/README.mdx"][0]["url"].startswith(
        "https://docusaurus.io/docs/api/plugin-methods"
    )
    assert not any("/_" in "/" + f for f in by_file)


def test_docs_path_is_the_book_start_up_indexes_so_another_folder_is_refused(make_settings, book, tmp_path):
    other = tmp_path / "other-book"
    shutil.copytree(FIXTURE_BOOK, other)
    app = create_app(make_settings(docs_path=book))  # embedded, INDEX_ON_START=true: the defaults
    cli = app.test_cli_runner()

    refused = cli.invoke(args=["ingest", str(other), "--json"])
    assert refused.exit_code == 1
    assert "is not DOCS_PATH" in refused.output and "Traceback" not in refused.output
    assert app.extensions["services"].index.count() == 0, "nothing was written"

    assert cli.invoke(args=["ingest", str(other), "--dry-run"]).exit_code == 0  # changes nothing
    assert cli.invoke(args=["ingest", str(book), "--json"]).exit_code == 0  # the book itself
    assert summary(cli.invoke(args=["ingest", "--json"]).output)["unchanged"] > 0  # DOCS_PATH, the same
