"""The answer benchmark's detectors: what a reader would see as broken in an answer."""

import pytest

from bench.answer_checks import (
    broken_text,
    cited_numbers,
    cites_gold_page,
    key_facts_held,
    markdown_markers,
    uncited_sources,
)

CLEAN = (
    "Docusaurus can add a search bar with Algolia DocSearch [1]. The theme provides the search page, "
    "e.g., at /search, and an ellipsis... stays fine [2]. Version 3.0.0 requires Node 18 [3]."
)


def test_plain_prose_with_citations_has_no_markdown_and_nothing_broken():
    assert markdown_markers(CLEAN) == []
    assert broken_text(CLEAN) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("**Docs > Sidebar**: the sidebar lists the docs [1].", "bold or emphasis"),
        ("Set `onBrokenLinks` to warn [1].", "inline code"),
        ("Run this:\n```bash\nnpm run build\n```", "code fence"),
        ("## Deployment\nDeploy with the CLI [1].", "heading"),
        ("Options:\n- title\n- tagline [1]", "bullet"),
        ("Steps: 1. install 2. run [1]\n1. install", "bullet"),
        ("| Name | Type |\n| --- | --- |", "table"),
        ("See [the guide](https://docusaurus.io/docs) for more [1].", "link"),
    ],
)
def test_markdown_is_found(text, kind):
    assert kind in markdown_markers(text)


def test_citations_are_not_markdown_links():
    assert markdown_markers("Use the blog plugin [1][2].") == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Accepted fields: [1]", "dangling colon"),
        ("Verify the installation: [3]", "dangling colon"),
        ("Run it with --host 0.0.0.0.. [1]", "doubled punctuation"),
        ("The options are title,, tagline [1].", "doubled punctuation"),
        ("Write the front matter (an example; see the section) [2].", "placeholder"),
        ("Name — Type — Default — Description. slug — string — … [1]", "flattened table row"),
        ("Feeds are generated. RSS: Atom: JSON: [1]", "dropped URL"),
    ],
)
def test_broken_text_is_found(text, kind):
    assert kind in broken_text(text)


def test_a_single_dash_aside_and_urls_are_not_broken():
    text = "The site — built with React — deploys anywhere; see https://docusaurus.io/docs [1]."
    assert "flattened table row" in broken_text(text)  # two " — " in one sentence reads as a row
    assert broken_text("The site — built with React. It deploys to https://example.com [1].") == []


def test_sources_never_cited_are_listed_by_number():
    sources = [{"file": "a.md"}, {"file": "b.md"}, {"file": "c.md"}]
    assert cited_numbers("One [1]. Three [3].") == {1, 3}
    assert uncited_sources("One [1]. Three [3].", sources) == [2]
    assert uncited_sources("No citation at all.", sources) == [1, 2, 3]
    assert uncited_sources("One [1].", []) == []


def test_gold_page_must_be_cited_not_only_listed():
    sources = [{"file": "intro.md"}, {"file": "guides/search.mdx"}]
    assert cites_gold_page("Search is built in [2].", sources, ["guides/search.mdx"])
    assert not cites_gold_page("Docusaurus is a site generator [1].", sources, ["guides/search.mdx"])
    assert not cites_gold_page("Out of range [7].", sources, ["guides/search.mdx"])


def test_key_facts_are_held_case_insensitively_and_through_their_other_spellings():
    answer = "Set onBrokenLinks to 'THROW' in the `blog` directory [1]."
    assert key_facts_held(answer, ["onbrokenlinks", "throw", "navbar"]) == [True, True, False]
    spellings = ["blog directory", "`blog` directory", "blog/"]
    assert key_facts_held(answer, ["blog directory", "throw"], spellings) == [True, True]
    assert key_facts_held("Nothing here.", ["blog directory"], spellings) == [False]
