"""The reader's page as a tie-break between contenders: first when it is within reach of the best
page, untouched otherwise, so a page on another subject never reorders the ones that answer."""

from __future__ import annotations

import pytest

from app.services.retrieval.current_page import CURRENT_PAGE_PRIOR, prefer_current


def order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda page: -scores[page])


def test_a_page_within_reach_of_the_best_comes_first():
    scores = {"answer.md": 1.0, "current.md": 0.85, "other.md": 0.5}
    preferred = prefer_current(scores, "current.md")
    assert order(preferred) == ["current.md", "answer.md", "other.md"]
    assert preferred["current.md"] == pytest.approx(0.85 * CURRENT_PAGE_PRIOR)
    assert preferred["answer.md"] == 1.0 and preferred["other.md"] == 0.5


def test_a_page_that_cannot_reach_the_best_reorders_nothing():
    # The sibling case: lifted part of the way it would pass the page ranked second, which
    # answers the question, without becoming the answer itself.
    scores = {"best.md": 1.0, "answer.md": 0.65, "sibling.md": 0.6}
    assert 0.6 * CURRENT_PAGE_PRIOR > 0.65 and 0.6 * CURRENT_PAGE_PRIOR < 1.0
    assert prefer_current(scores, "sibling.md") == scores


@pytest.mark.parametrize("behind", [0.79, 0.81])
def test_reach_is_the_prior(behind):
    preferred = order(prefer_current({"best.md": 1.0, "current.md": behind}, "current.md"))
    assert preferred[0] == ("current.md" if behind * CURRENT_PAGE_PRIOR >= 1.0 else "best.md")


def test_the_best_page_is_left_as_it_is():
    # Its score is what the others' similarity is relative to: raising it would only lower theirs.
    scores = {"current.md": 1.0, "other.md": 0.9}
    assert prefer_current(scores, "current.md") == scores


@pytest.mark.parametrize("current", [None, "not-a-candidate.md"])
def test_no_page_or_a_page_among_no_candidates_changes_nothing(current):
    scores = {"best.md": 1.0, "other.md": 0.95}
    assert prefer_current(scores, current) == scores
