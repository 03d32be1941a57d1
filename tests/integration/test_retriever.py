"""Retrieval on a real embedded index of the fixture book: the floor, and fused follow-up queries."""

import pytest

from app.config import load_settings
from app.services.container import make_ingester, make_retriever
from app.services.index import open_index
from tests.conftest import FIXTURE_BOOK


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    settings = load_settings(instance_path=tmp_path_factory.mktemp("retriever"), qdrant_url=None, docs_path=FIXTURE_BOOK)
    make_ingester(settings).ingest(FIXTURE_BOOK)
    return make_retriever(open_index(settings), None)


def files(result):
    return [p.file for p in result.passages]


def test_a_question_the_book_covers_gets_passages_and_a_covered_verdict(retriever):
    result = retriever.retrieve("How often should I water tomatoes?")
    assert files(result)[0] == "guides/watering.md"
    assert result.verdict.covered and result.verdict.page == "guides/watering.md"


def test_a_question_the_book_does_not_cover_gets_nothing(retriever):
    result = retriever.retrieve("What is the stock price of Apple?")
    assert result.passages == [] and not result.verdict.covered


def test_a_poor_wording_is_carried_by_its_alternative(retriever):
    alone = retriever.retrieve("ok")
    assert alone.passages == []
    fused = retriever.retrieve("ok", alternatives=["How do I water basil?\nAnd the other herbs?"])
    assert files(fused)[0] == "guides/watering.md" and fused.verdict.covered


def test_two_good_wordings_are_fused(retriever):
    frost = retriever.retrieve("When do seedlings go outside after frost?")
    both = retriever.retrieve("When do seedlings go outside after frost?", alternatives=["How do I water basil?"])
    assert files(frost)[0] == "api/configuration.mdx"
    assert {"api/configuration.mdx", "guides/watering.md"} <= set(files(both))


def test_start_up_counts_the_books_terms_so_no_reader_waits_for_the_scan(app):
    # `app` has run its start-up tasks (tests/conftest.py): the floor's counts are ready.
    retriever = app.extensions["services"].retriever
    assert retriever._stats is not None and retriever._stats[0] == retriever.index.version()
    assert retriever.warm() > 0
