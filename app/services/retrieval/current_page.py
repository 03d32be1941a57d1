"""The page the reader is on: matched to indexed pages by their URLs, and preferred when it is a
contender for the best page."""

from __future__ import annotations

from urllib.parse import urlsplit

# The reader's page is a tie-break between contenders: multiplied by this, it must reach the best
# page's score (it is within 25 % of it) or it is left where it is. Applied after fusion, only
# among the candidates of a question the relevance floor passed, so it never admits an
# off-topic question.
CURRENT_PAGE_PRIOR = 1.25


def prefer_current(page_score: dict[str, float], current: str | None) -> dict[str, float]:
    """The pages' scores with the reader's page (`current`, a key of `page_score`, or None)
    preferred: times CURRENT_PAGE_PRIOR when that makes it the best page, unchanged otherwise.

    All or nothing, because a page that cannot reach the top is about something else: lifting it
    part of the way only pushes down pages with more evidence than it, and a sibling page on the
    same subject displaced the answer's own page that way (bench/README.md, "The reader's page").
    """
    if current not in page_score:
        return page_score
    boosted, best = page_score[current] * CURRENT_PAGE_PRIOR, max(page_score.values())
    if boosted < best or page_score[current] == best:
        return page_score
    return {**page_score, current: boosted}


def page_key(url: str) -> tuple[str, str] | None:
    """(host, path) of a page URL or path, without query, fragment or trailing slash; None when
    it is neither an http(s) URL nor a path starting with '/'."""
    parts = urlsplit(url.strip())
    if parts.scheme and parts.scheme not in ("http", "https"):
        return None
    if not parts.scheme and not parts.path.startswith("/"):
        return None
    return parts.netloc.lower(), "/" + parts.path.strip("/")


def same_page(indexed_url: str, page: tuple[str, str]) -> bool:
    """Whether an indexed section's URL is on `page` (a `page_key`); hosts must agree when both
    are known, so a URL of another site is never taken for a page of this book."""
    key = page_key(indexed_url)
    if key is None:
        return False
    host, path = key
    return path == page[1] and (not host or not page[0] or host == page[0])
