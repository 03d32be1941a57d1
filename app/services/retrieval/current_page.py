"""The page the reader is on: matched to indexed pages by their URLs, and preferred when relevant."""

from __future__ import annotations

from urllib.parse import urlsplit

# A multiplicative prior on the current page's score, applied after fusion to pages that are
# already candidates of a question the relevance floor passed: it reorders pages that are close
# (within 25%), and can neither admit an off-topic question nor lift a page that barely matches.
CURRENT_PAGE_PRIOR = 1.25


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
