"""Citations renumbered in order of first appearance, split across chunks or not."""

import pytest

from app.services.answering.citations import CitationRenumberer, renumber
from app.services.answering.shaping import AnswerShaper
from app.services.retrieval.retriever import Passage


def test_first_cited_becomes_one():
    text, cited = renumber("Deploy with Vercel [3]. Or Netlify [1][3]. Or both [3, 1].", 5)
    assert text == "Deploy with Vercel [1]. Or Netlify [2][1]. Or both [1][2]."
    assert cited == [2, 0]


def test_numbers_naming_no_passage_are_dropped():
    assert renumber("One [1]. Ghost [7]. Zero [0].", 3) == ("One [1]. Ghost. Zero.", [0])


def test_brackets_in_code_and_prose_are_not_citations():
    text, cited = renumber("Use `items[2]` and [the guide] [2].", 3)
    assert text == "Use `items[2]` and [the guide] [1]." and cited == [1]


@pytest.mark.parametrize("text", ["A [2]. B [1][3]. C [3, 2].", "[1][2][3] start", "x [12] y [2]"])
def test_every_split_point_gives_the_same_text(text):
    whole = renumber(text, 20)
    for cut in range(1, len(text)):
        for second in (cut + 1, cut + 2):
            renumberer = CitationRenumberer(20)
            out = "".join(renumberer.feed(p) for p in (text[:cut], text[cut:second], text[second:]))
            assert (out + renumberer.finish(), renumberer.cited) == whole


def test_an_open_citation_waits_for_its_end():
    renumberer = CitationRenumberer(3)
    assert renumberer.feed("Tomatoes [") == "Tomatoes "
    assert renumberer.feed("3") == ""
    assert renumberer.feed("]. Basil [1") == "[1]. Basil "
    assert renumberer.feed("][3].") == "[2][1]."
    assert renumberer.cited == [2, 0]


def passage(heading):
    return Passage(
        file=f"{heading}.md",
        title=heading,
        heading=heading,
        anchor=None,
        url="",
        text=f"# {heading}\n\n**{heading}** text.",
        score=1.0,
        similarity=0.5,
    )


def test_the_shaper_lists_only_the_cited_passages_in_citation_order():
    shaper = AnswerShaper([passage("a"), passage("b"), passage("c")], strip_markdown=True)
    text = "".join(shaper.feed(p) for p in ["**C** first [", "3]. A `", "next` [1]", "."]) + shaper.finish()
    assert text == "C first [1]. A next [2]."
    assert [s["heading"] for s in shaper.sources] == ["c", "a"]
    assert shaper.sources[0]["snippet"] == "c. c text."  # the section's text, plain
