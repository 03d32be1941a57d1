"""Retrieval on a real embedded index of the fixture book: the floor, and fused follow-up queries."""

import pytest

from app.config import load_settings
from app.services.container import make_ingester, make_retriever
from app.services.index import open_index
from tests.conftest import FIXTURE_BOOK


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    settings = load_settings(
        instance_path=tmp_path_factory.mktemp("retriever"), qdrant_url=None, docs_path=FIXTURE_BOOK
    )
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
    both = retriever.retrieve(
        "When do seedlings go outside after frost?", alternatives=["How do I water basil?"]
    )
    assert files(frost)[0] == "api/configuration.mdx"
    assert {"api/configuration.mdx", "guides/watering.md"} <= set(files(both))


def test_start_up_counts_the_books_terms_so_no_reader_waits_for_the_scan(app):
    # `app` has run its start-up tasks (tests/conftest.py): the floor's counts are ready.
    retriever = app.extensions["services"].retriever
    assert retriever._stats is not None and retriever._stats[0] == retriever.index.version()
    assert retriever.warm() > 0


def test_a_long_section_is_one_passage_with_its_parts_joined(tmp_path):
    # A section longer than a chunk is indexed in parts; the answerer is given the section, so
    # "Options" whose command sits in its second part is answered with the command.
    docs = tmp_path / "docs"
    docs.mkdir()
    filler = " ".join(
        f"The greenhouse heater keeps seedling trays warm in week {n} of spring." for n in range(40)
    )
    (docs / "heater.md").write_text(
        "# Greenhouse heater\n\n## Heater options\n\n"
        f"The greenhouse heater reads its options from the command line.\n\n{filler}\n\n"
        "To run the greenhouse heater on a timer, use this command:\n\n```bash\nheater --timer 6h\n```\n"
    )
    (docs / "other.md").write_text("# Watering\n\n## Tomatoes\n\nTomatoes need deep watering twice a week.\n")
    settings = load_settings(instance_path=tmp_path / "instance", qdrant_url=None, docs_path=docs)
    summary = make_ingester(settings).ingest(docs)
    assert summary.chunks >= 3  # the heater section is more than one part
    result = make_retriever(open_index(settings), None).retrieve("greenhouse heater options command")
    heater = [p for p in result.passages if p.file == "heater.md"]
    assert len(heater) == 1  # one section, one passage
    text = heater[0].text
    assert text.startswith("The greenhouse heater reads its options") and "heater --timer 6h" in text
    assert text.count("week 20 of spring") == 1  # the overlap between parts is not repeated


def test_a_pages_how_to_comes_beside_its_intro(tmp_path):
    # "Add the rain gauge": the page's intro matches best, its third section best after it, but
    # the reader needs the configuration, which only the example section shows.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gauge.md").write_text(
        "# Rain gauge plugin\n\nThe rain gauge plugin adds a rain gauge to every garden page.\n\n"
        "## Example configuration\n\n```js\nexport default "
        "{plugins: [['rain-gauge', {unit: 'mm'}]]};\n```\n\n"
        "## Rain gauge history\n\nThe rain gauge plugin was a rain gauge sketch before it was a plugin.\n"
    )
    (docs / "other.md").write_text("# Watering\n\n## Tomatoes\n\nTomatoes need deep watering twice a week.\n")
    settings = load_settings(instance_path=tmp_path / "instance", qdrant_url=None, docs_path=docs)
    make_ingester(settings).ingest(docs)
    retriever = make_retriever(open_index(settings), None)

    result = retriever.retrieve("Add the rain gauge plugin")

    gauge = [p.anchor for p in result.passages if p.file == "gauge.md"]
    assert gauge == [None, "example-configuration"]
    assert "unit: 'mm'" in result.passages[1].text
