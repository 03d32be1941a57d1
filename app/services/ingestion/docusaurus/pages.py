"""Which files of a docs folder are pages, and each page read whole: route, front matter, sections."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import frontmatter
import yaml

from app.services.ingestion.docusaurus.front_matter import (
    doc_route,
    document_id,
    is_true,
    labels,
    optional_str,
)
from app.services.ingestion.docusaurus.sections import Section, body_events, build_sections, content_title


@dataclass(frozen=True)
class Page:
    """One doc page: where the site serves it, its front matter and its sections."""

    file: str
    route: str
    url: str
    title: str
    description: str | None
    sidebar_label: str | None
    tags: tuple[str, ...]
    keywords: tuple[str, ...]
    draft: bool
    unlisted: bool
    sections: tuple[Section, ...]


_PAGE_SUFFIXES = (".md", ".mdx")


def _is_excluded_name(name: str) -> bool:
    # Docusaurus excludes "**/_*" (partials) by default and its globbing skips
    # dot-files; node_modules is never docs content.
    return name.startswith(("_", ".")) or name == "node_modules"


def discover_pages(docs_dir: Path) -> list[Path]:
    """Every Markdown/MDX file Docusaurus builds a page for, sorted by relative path.

    Files or folders whose name starts with ``_`` (partials, meant to be
    imported) or ``.`` (hidden), and ``node_modules``, are left out.
    """
    docs_dir = Path(docs_dir)
    found: list[Path] = []
    for root, dirs, files in os.walk(docs_dir):
        dirs[:] = [name for name in dirs if not _is_excluded_name(name)]
        found.extend(
            Path(root) / name
            for name in files
            if name.endswith(_PAGE_SUFFIXES) and not _is_excluded_name(name)
        )
    return sorted(found, key=lambda path: path.relative_to(docs_dir).as_posix())


def read_book(
    docs_dir: Path,
    *,
    site_url: str = "",
    route_base_path: str = "docs",
    include_drafts: bool = False,
) -> list[Page]:
    """Parse every page of the docs folder, in ``discover_pages`` order.

    Drafts (``draft: true``) are left out unless ``include_drafts``, as in a
    production build. Unlisted pages (``unlisted: true``) are kept and marked
    ``Page.unlisted``: the site serves them at their URL but hides them from
    sidebars, sitemaps and search engines (noindex). An assistant that answers
    from the book is a search surface, so the chunker skips them by default
    (see ``chunking.chunk_book(include_unlisted=...)``).
    """
    pages = [
        parse_page(docs_dir, path, site_url=site_url, route_base_path=route_base_path)
        for path in discover_pages(docs_dir)
    ]
    return [page for page in pages if include_drafts or not page.draft]


def parse_page(docs_dir: Path, path: Path, *, site_url: str = "", route_base_path: str = "docs") -> Page:
    """Parse one doc file of ``docs_dir`` into a Page.

    ``path`` may be absolute or relative to ``docs_dir``. ``site_url`` is the
    site's ``url`` (e.g. ``https://docusaurus.io``; "" gives URLs equal to the
    route), ``route_base_path`` the docs plugin's ``routeBasePath``.
    """
    docs_dir = Path(docs_dir)
    path = Path(path)
    try:
        relative = PurePosixPath(path.relative_to(docs_dir).as_posix())
    except ValueError:
        if path.is_absolute():
            raise ValueError(f"{path} is not inside {docs_dir}") from None
        relative, path = PurePosixPath(path.as_posix()), docs_dir / path
    try:
        post = frontmatter.loads(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as error:
        raise ValueError(f"{relative}: invalid front matter: {error}") from error
    meta = post.metadata

    base_id = document_id(relative, meta)
    route = doc_route(relative, meta, base_id, route_base_path)
    events = body_events(post.content, path.parent, frozenset({path.resolve()}))
    title_in_content = content_title(events)
    title = optional_str(meta.get("title")) or title_in_content or base_id
    return Page(
        file=relative.as_posix(),
        route=route,
        url=site_url.rstrip("/") + quote(route, safe="/@:+!$&'()*,;=-._~"),
        title=title,
        description=optional_str(meta.get("description")),
        sidebar_label=optional_str(meta.get("sidebar_label")),
        tags=labels(meta.get("tags")),
        keywords=labels(meta.get("keywords")),
        draft=is_true(meta.get("draft")),
        unlisted=is_true(meta.get("unlisted")),
        sections=tuple(build_sections(events, title, skip_content_title=title_in_content is not None)),
    )
