"""What a page's path and front matter say: its id, its route, and its fields' values.

The route rules follow Docusaurus 3's plugin-content-docs (numberPrefix.ts, slug.ts, docs.ts),
so that every route computed here is the one the published site serves.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import PurePosixPath
from typing import Any

# --------------------------------------------------------------------------
# Front matter values


def optional_str(value: object) -> str | None:
    """The value as stripped text; None when it is missing or blank."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def is_true(value: object) -> bool:
    """Whether a flag such as ``draft`` is set."""
    # YAML gives booleans; a quoted "true" is accepted as well, but never the
    # truthiness of an arbitrary string like "false".
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def labels(value: object) -> tuple[str, ...]:
    """Tags/keywords: a list of strings or of ``{label: ...}`` objects (or one string)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        label = item.get("label") if isinstance(item, dict) else item
        text = optional_str(label)
        if text:
            found.append(text)
    return tuple(found)


# --------------------------------------------------------------------------
# Routes (plugin-content-docs: numberPrefix.ts, slug.ts, docs.ts)

# Date-like (2021-03-05-x) and version-like (1.2-x) names keep their digits.
_IGNORED_NUMBER_PREFIX = re.compile(r"^((\d{2}|\d{4})[-_.]\d{2}([-_.](\d{2}|\d{4}))?)|^(\d+[-_.]\d+)")
_NUMBER_PREFIX = re.compile(r"^(\d+)(\s*[-_.]+\s*)(.*)$", re.DOTALL)


def _strip_number_prefix(name: str) -> str:
    """``01-intro`` → ``intro``, ``003 - Client API`` → ``Client API``."""
    if _IGNORED_NUMBER_PREFIX.match(name):
        return name
    match = _NUMBER_PREFIX.match(name)
    return match.group(3) if match else name


def _file_stem(relative: PurePosixPath) -> str:
    # Only the last suffix is the extension: "docusaurus.config.js.mdx" has
    # the id "docusaurus.config.js".
    return relative.name[: -len(relative.suffix)] if relative.suffix else relative.name


def document_id(relative: PurePosixPath, meta: dict[str, Any]) -> str:
    """The doc's id: front matter ``id``, else the file name without extension and number prefix."""
    front_matter_id = optional_str(meta.get("id"))
    if front_matter_id is None:
        return _strip_number_prefix(_file_stem(relative))
    if "/" in front_matter_id:
        raise ValueError(f"{relative}: document id {front_matter_id!r} cannot include slash")
    return front_matter_id


def _is_category_index(relative: PurePosixPath) -> bool:
    # index.md, README.md and foo/foo.md stand for their folder (case-insensitive,
    # compared before number prefixes are stripped, as Docusaurus does).
    folder = relative.parent.name or "."
    return _file_stem(relative).lower() in {"index", "readme", folder.lower()}


def _doc_slug(relative: PurePosixPath, meta: dict[str, Any], base_id: str) -> str:
    front_matter_slug = meta.get("slug")
    front_matter_slug = None if front_matter_slug is None else str(front_matter_slug)
    if front_matter_slug is not None and front_matter_slug.startswith("/"):
        return front_matter_slug
    folder = relative.parent.as_posix()
    folder_slug = (
        "/"
        if folder == "."
        else "/" + "/".join(_strip_number_prefix(part) for part in folder.split("/")) + "/"
    )
    if not front_matter_slug and _is_category_index(relative):
        return folder_slug
    # A relative slug or id resolves against the folder like a relative URL.
    target = front_matter_slug if front_matter_slug is not None else base_id
    return posixpath.normpath(posixpath.join(folder_slug, target))


def _route(route_base_path: str, slug: str) -> str:
    """Join base path and slug; no duplicate slashes, no trailing slash but for "/"."""
    parts = [part for part in f"{route_base_path}/{slug}".split("/") if part and part != "."]
    return "/" + "/".join(parts)


def doc_route(relative: PurePosixPath, meta: dict[str, Any], base_id: str, route_base_path: str) -> str:
    """The route the site serves the page at, e.g. ``/docs/api/docusaurus-config``."""
    return _route(route_base_path, _doc_slug(relative, meta, base_id))
