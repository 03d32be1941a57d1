"""Read a Docusaurus docs folder the way Docusaurus does.

The rules below follow Docusaurus 3 (plugin-content-docs, mdx-loader) and
github-slugger, so that every route and anchor computed here is the one the
published site serves:

- which files are pages (``discover_pages``),
- each page's route, title and front matter (``parse_page``),
- each page's sections: the text under each ATX heading (``#``..``######``;
  the docs use no setext headings), cleaned of MDX syntax, with the heading's
  id (``Section.anchor``), plus one small section per option row of an
  ``<APITable>``, whose rows the site gives an id too. Markdown partials
  (``import X from './_x.mdx'`` then ``<X />``) are inlined where used, as
  the site renders them.

MDX cleaning removes only MDX syntax: ESM ``import``/``export`` blocks,
comments, JSX tags (keeping their text, and a ``TabItem``'s label),
``:::`` admonition fences (kept as a "Note: Title" line). Code fences are kept
verbatim; ```` ```mdx-code-block ```` fences are unwrapped, as Docusaurus
does. Any ``{expression}`` that is not a comment is kept as written.

Pure Python, no network; nothing here knows about Flask or the rest of the app.
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import frontmatter
import yaml
from markdown_it import MarkdownIt

__all__ = [
    "Page",
    "Section",
    "Slugger",
    "closes_fence",
    "discover_pages",
    "parse_fence_opener",
    "parse_page",
    "read_book",
    "slugify_heading",
]


@dataclass(frozen=True)
class Section:
    """One heading's worth of a page.

    ``heading_path`` runs from the page title down to this section's heading,
    e.g. ``("docusaurus.config.js", "Optional fields", "scripts")``; the text
    before the first heading has ``(title,)``. ``anchor`` is the id the site
    gives the heading (None for that top section). ``level`` is 1 for the top
    section and the heading depth otherwise (2 for ``##``...). An APITable
    option row is a section one level below the section holding the table.
    ``text`` is the body without the heading line: markdown with the MDX
    syntax removed, code blocks kept as fenced blocks with their info string.
    """

    heading_path: tuple[str, ...]
    anchor: str | None
    level: int
    text: str


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


# --------------------------------------------------------------------------
# Which files are pages

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

    base_id = _base_id(relative, meta)
    route = _route(route_base_path, _doc_slug(relative, meta, base_id))
    events = _body_events(post.content, path.parent, frozenset({path.resolve()}))
    content_title = _content_title(events)
    title = _optional_str(meta.get("title")) or content_title or base_id
    return Page(
        file=relative.as_posix(),
        route=route,
        url=site_url.rstrip("/") + quote(route, safe="/@:+!$&'()*,;=-._~"),
        title=title,
        description=_optional_str(meta.get("description")),
        sidebar_label=_optional_str(meta.get("sidebar_label")),
        tags=_labels(meta.get("tags")),
        keywords=_labels(meta.get("keywords")),
        draft=_is_true(meta.get("draft")),
        unlisted=_is_true(meta.get("unlisted")),
        sections=tuple(_build_sections(events, title, skip_content_title=content_title is not None)),
    )


# --------------------------------------------------------------------------
# Front matter values


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _is_true(value: object) -> bool:
    # YAML gives booleans; a quoted "true" is accepted as well, but never the
    # truthiness of an arbitrary string like "false".
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _labels(value: object) -> tuple[str, ...]:
    """Tags/keywords: a list of strings or of ``{label: ...}`` objects (or one string)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    labels = []
    for item in items:
        label = item.get("label") if isinstance(item, dict) else item
        text = _optional_str(label)
        if text:
            labels.append(text)
    return tuple(labels)


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


def _base_id(relative: PurePosixPath, meta: dict) -> str:
    front_matter_id = _optional_str(meta.get("id"))
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


def _doc_slug(relative: PurePosixPath, meta: dict, base_id: str) -> str:
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


# --------------------------------------------------------------------------
# Heading ids (github-slugger, as Docusaurus' remark "headings" plugin uses it)

_INLINE_MARKDOWN = MarkdownIt("commonmark")

# So (Other_Symbol) code points that Unicode also calls Alphabetic (circled and
# squared Latin letters): github-slugger keeps them.
_ALPHABETIC_SYMBOL_RANGES = ((0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189))


def _kept_by_slugger(char: str) -> bool:
    # github-slugger removes Other_Number, all punctuation but "-" and
    # connector punctuation ("_"), symbols, controls, format/private/unassigned
    # code points and separators but the plain space; letters, marks, decimal
    # and letter numbers stay.
    if char in " -":
        return True
    category = unicodedata.category(char)
    if category[0] in "LM" or category in ("Nd", "Nl", "Pc"):
        return True
    return category == "So" and any(low <= ord(char) <= high for low, high in _ALPHABETIC_SYMBOL_RANGES)


def _markdown_to_plain(markdown_text: str) -> str:
    """The text a heading shows: formatting, backticks, link targets and HTML tags removed."""
    tokens = _INLINE_MARKDOWN.parseInline(markdown_text)
    return "".join(_token_text(token) for token in tokens[0].children or []).strip()


def _token_text(token) -> str:
    if token.type in ("text", "text_special", "code_inline"):
        return token.content
    if token.type in ("softbreak", "hardbreak"):
        return " "
    if token.type == "image":
        return "".join(_token_text(child) for child in token.children or [])
    return ""


def _github_slug(plain_text: str) -> str:
    lowered = plain_text.lower()
    return "".join(char for char in lowered if _kept_by_slugger(char)).replace(" ", "-")


def slugify_heading(text: str) -> str:
    """The id Docusaurus gives a heading with this (markdown) text, ignoring duplicates.

    E.g. ``Using `docusaurus.config.js` [here](x)`` gives ``using-docusaurusconfigjs-here``.
    """
    return _github_slug(_markdown_to_plain(text))


class Slugger:
    """github-slugger's stateful slugger: a repeated slug gets ``-1``, ``-2``... appended."""

    def __init__(self) -> None:
        self._occurrences: dict[str, int] = {}

    def slug(self, text: str) -> str:
        """The unique id for the next heading with this (markdown) text."""
        original = slugify_heading(text)
        result = original
        while result in self._occurrences:
            self._occurrences[original] += 1
            result = f"{original}-{self._occurrences[original]}"
        self._occurrences[result] = 0
        return result


# --------------------------------------------------------------------------
# Code fences (shared with the chunker, which must never cut inside one)

_FENCE_OPENER = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def parse_fence_opener(line: str) -> tuple[str, str] | None:
    """``(fence, info)`` if the line opens a code fence, else None.

    ``'```js title="x.js"'`` gives ``("```", 'js title="x.js"')``.
    """
    match = _FENCE_OPENER.match(line)
    if not match or (match["fence"][0] == "`" and "`" in match["info"]):
        return None
    return match["fence"], match["info"].strip()


def closes_fence(line: str, fence: str) -> bool:
    """Whether the line closes a fence opened with ``fence`` (same character, at least as long)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _fence_end(lines: list[str], start: int, fence: str) -> int:
    """Index of the closing fence line after ``start`` (len(lines) if the fence is never closed)."""
    end = start + 1
    while end < len(lines) and not closes_fence(lines[end], fence):
        end += 1
    return end


def _unwrap_mdx_code_blocks(lines: list[str]) -> list[str]:
    # Docusaurus renders ```mdx-code-block fences as MDX (it is how the docs
    # show JSX in editors that would mangle it): their content is page content.
    unwrapped: list[str] = []
    index = 0
    while index < len(lines):
        opener = parse_fence_opener(lines[index])
        if opener is None:
            unwrapped.append(lines[index])
            index += 1
            continue
        end = _fence_end(lines, index, opener[0])
        if opener[1].split()[:1] == ["mdx-code-block"]:
            unwrapped += ["", *_unwrap_mdx_code_blocks(lines[index + 1 : end]), ""]
        else:
            unwrapped += lines[index : end + 1]
        index = end + 1
    return unwrapped


# --------------------------------------------------------------------------
# MDX ESM (import/export blocks)

_ESM_START = re.compile(
    r"^(?:import\s+(?:['\"{*]|[\w$]+\s*(?:,|from\b))|export\s+(?:const|let|var|function|async|class|default|\{|\*))"
)
_STRING_LITERAL = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|`(?:[^`\\]|\\.)*`")
_ATX_HEADING = re.compile(r"^\s*(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
# A balanced line ending like this completes a statement (`import x from 'y'`, `};`).
_STATEMENT_ENDINGS = (";", "'", '"', "}", ")", "]")
_PARTIAL_IMPORT = re.compile(r"^import\s+([\w$]+)\s+from\s+['\"](\.{1,2}/[^'\"]+\.mdx?)['\"]", re.MULTILINE)


def _esm_end(lines: list[str], start: int) -> int:
    """Index just after the ESM statement block starting at ``start``.

    Like MDX, a block runs to a blank line once its brackets are balanced (a
    one-line statement ends at its own line); a markdown heading stops it in
    any case, so that an unbalanced bracket can never swallow the page.
    """
    depth = 0
    index = start
    while index < len(lines):
        code = _STRING_LITERAL.sub('""', lines[index]).rstrip()
        depth += sum(code.count(opening) for opening in "([{") - sum(code.count(closing) for closing in ")]}")
        index += 1
        if index == len(lines) or _ATX_HEADING.match(lines[index]):
            return index
        following = lines[index]
        statement_done = code.endswith(_STATEMENT_ENDINGS)
        if depth <= 0 and (statement_done or not following.strip() or _ESM_START.match(following)):
            return index
    return index


# --------------------------------------------------------------------------
# Inline MDX cleaning: comments, expressions and JSX tags

# Markers the inline cleaner leaves on their own line for the section builder.
# They start with NUL, which is removed from the input first, so no doc text
# can look like one.
_MARK = "\x00"
_API_TABLE_OPEN = f"{_MARK}table-open{_MARK}"
_API_TABLE_CLOSE = f"{_MARK}table-close{_MARK}"
_PARTIAL = f"{_MARK}partial{_MARK}"

_SPECIAL_CHARS = re.compile(r"[\\`<{]")
_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_TAG_NAME = re.compile(r"[A-Za-z][\w.:-]*")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:$][\w.:$-]*")
_WHITESPACE = re.compile(r"\s*")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


@dataclass
class _JsxTag:
    name: str
    attributes: dict[str, str | None]
    closing: bool
    self_closing: bool
    end: int


def _code_span_end(text: str, start: int) -> int | None:
    """End of the inline code span opening at ``start``; None if the backticks are literal."""
    run = _BACKTICKS.match(text, start).end() - start
    closer = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(text, start + run)
    if closer is None or _BLANK_LINE.search(text, start, closer.start()):
        return None
    return closer.end()


def _skip_string(text: str, start: int) -> int | None:
    """End of the JS string/template literal opening at ``start`` (None if unterminated)."""
    quote_char = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == quote_char:
            return index + 1
        if char == "\n" and quote_char != "`":
            return None
        index += 1
    return None


def _expression_end(text: str, start: int) -> int | None:
    """End of the balanced ``{...}`` expression opening at ``start`` (None if unbalanced)."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char in "'\"`":
            end = _skip_string(text, index)
            index = end if end is not None else index + 1
            continue
        if text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end == -1:
                return None
            index = end + 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None


def _parse_jsx_tag(text: str, start: int) -> _JsxTag | None:
    """The JSX tag (``<X a="1" b={2}>``, ``</X>``, ``<X />``, ``<>``) at ``start``, or None."""
    index = start + 1
    closing = text.startswith("/", index)
    index += closing
    name_match = _TAG_NAME.match(text, index)
    name = name_match.group() if name_match else ""
    index = name_match.end() if name_match else index
    if not name and not text.startswith(">", index):
        return None
    attributes: dict[str, str | None] = {}
    while index < len(text):
        index = _WHITESPACE.match(text, index).end()
        if text.startswith("/>", index):
            return _JsxTag(name, attributes, closing, True, index + 2)
        if text.startswith(">", index):
            return _JsxTag(name, attributes, closing, False, index + 1)
        if closing:
            return None
        if text.startswith("{", index):  # {...spread}
            end = _expression_end(text, index)
            if end is None:
                return None
            index = end
            continue
        attribute = _ATTRIBUTE_NAME.match(text, index)
        if attribute is None:
            return None
        index = _WHITESPACE.match(text, attribute.end()).end()
        value: str | None = None
        if text.startswith("=", index):
            index = _WHITESPACE.match(text, index + 1).end()
            if index < len(text) and text[index] in "'\"":
                end = text.find(text[index], index + 1)
                if end == -1:
                    return None
                value, index = text[index + 1 : end], end + 1
            elif text.startswith("{", index):
                end = _expression_end(text, index)
                if end is None:
                    return None
                index = end  # an expression value is not simple text: no value kept
            else:
                return None
        attributes[attribute.group()] = value
    return None


def _render_expression(raw: str) -> str:
    """What an MDX ``{...}`` expression leaves in the text."""
    inner = _BLOCK_COMMENT.sub("", raw[1:-1]).strip()
    if not inner:
        return ""  # {/* comment */} or {}
    if len(inner) >= 2 and inner[0] in "'\"`" and inner[-1] == inner[0] and not inner[1:-1].strip():
        return " "  # the JSX spacing idiom {' '}
    # Anything else (real JS, but also {#custom-id} and {.class} attributes
    # read later) is kept as written: never drop text we do not understand.
    return raw


class _MdxCleaner:
    """Removes MDX syntax from markdown text, keeping the text content."""

    def __init__(self, partial_components: dict[str, Path]):
        self.partial_components = partial_components
        self.partials_used: list[Path] = []

    def clean(self, text: str) -> str:
        """The text with comments, JSX tags and comment expressions removed."""
        pieces: list[str] = []
        index = 0
        while True:
            special = _SPECIAL_CHARS.search(text, index)
            if special is None:
                pieces.append(text[index:])
                return "".join(pieces)
            start = special.start()
            pieces.append(text[index:start])
            replacement, index = self._at_special(text, start)
            pieces.append(replacement)

    def _at_special(self, text: str, start: int) -> tuple[str, int]:
        char = text[start]
        if char == "\\":
            return text[start : start + 2], start + 2  # escapes stay markdown
        if char == "`":
            end = _code_span_end(text, start) or _BACKTICKS.match(text, start).end()
            return text[start:end], end  # code is never cleaned
        if char == "{":
            end = _expression_end(text, start)
            return (_render_expression(text[start:end]), end) if end else (char, start + 1)
        if text.startswith("<!--", start):
            end = text.find("-->", start + 4)
            return ("", end + 3) if end != -1 else (char, start + 1)
        tag = _parse_jsx_tag(text, start)
        return (self._render_tag(tag), tag.end) if tag else (char, start + 1)

    def _render_tag(self, tag: _JsxTag) -> str:
        name, attributes = tag.name, tag.attributes
        if name == "APITable":
            if tag.closing:
                return f"\n{_API_TABLE_CLOSE}\n"
            return f"\n{_API_TABLE_OPEN}{attributes.get('name') or ''}\n"
        if tag.closing:
            return ""
        if name == "TabItem":
            label = attributes.get("label") or attributes.get("value")
            return f"{label}: " if label else ""
        if name == "Admonition":
            kind = (attributes.get("type") or "note").capitalize()
            title = attributes.get("title")
            return f"\n{kind}: {title}\n" if title else f"\n{kind}:\n"
        if name in self.partial_components and tag.self_closing:
            self.partials_used.append(self.partial_components[name])
            return f"\n{_PARTIAL}{len(self.partials_used) - 1}\n"
        if name == "br":
            return " "
        return ""


# --------------------------------------------------------------------------
# Body events: the page as a flat list of headings, text lines and code blocks

_ADMONITION_OPEN = re.compile(r"^(\s*):{3,}([A-Za-z][\w-]*)(.*)$")
_ADMONITION_CLOSE = re.compile(r"^\s*:{3,}\s*$")
_ADMONITION_REST = re.compile(r"^\s*(?:\[(?P<bracket>.*)\])?\s*(?:\{[^{}]*\})?\s*(?P<rest>.*?)\s*$")
_EXPLICIT_ID = re.compile(r"\s*\{#([^{}]+)\}\s*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str  # plain text
    anchor: str


@dataclass(frozen=True)
class _Code:
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Marker:
    kind: str  # "table_open" | "table_close" | "thematic_break"
    name: str = ""


_Event = _Heading | _Code | _Marker | str  # a str is one line of markdown text

_MAX_PARTIAL_DEPTH = 5


def _body_events(markdown: str, source_dir: Path, seen: frozenset[Path]) -> list[_Event]:
    """The page body as events; partials imported from .md/.mdx files are inlined.

    A partial renders inside the page on the site, so its text belongs to the
    page; its headings get ids from their own slugger, as on the site (an
    imported MDX file is a separate document).
    """
    text = markdown.replace(_MARK, "").replace("\r\n", "\n").replace("\r", "\n")
    lines = _unwrap_mdx_code_blocks(text.split("\n"))
    blocks, partial_components = _split_code_and_esm(lines, source_dir)
    cleaner = _MdxCleaner(partial_components)
    slugger = Slugger()
    events: list[_Event] = []
    for block in blocks:
        if isinstance(block, _Code):
            events.append(block)
            continue
        for line in cleaner.clean("\n".join(block)).split("\n"):
            if line.startswith(_PARTIAL):
                partial = cleaner.partials_used[int(line.removeprefix(_PARTIAL))]
                events += _partial_events(partial, seen)
            else:
                events.append(_line_event(line, slugger))
    return events


def _partial_events(partial: Path, seen: frozenset[Path]) -> list[_Event]:
    resolved = partial.resolve()
    if resolved in seen or len(seen) > _MAX_PARTIAL_DEPTH or not resolved.is_file():
        return []  # an import cycle or a missing file renders nothing either
    content = frontmatter.loads(resolved.read_text(encoding="utf-8-sig")).content
    return _body_events(content, resolved.parent, seen | {resolved})


def _split_code_and_esm(
    lines: list[str], source_dir: Path
) -> tuple[list[_Code | list[str]], dict[str, Path]]:
    """Split lines into code fences and markdown runs, dropping ESM blocks.

    Returns the blocks and the components imported from markdown partials.
    """
    blocks: list[_Code | list[str]] = []
    partial_components: dict[str, Path] = {}
    markdown_run: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        opener = parse_fence_opener(line)
        if opener is not None:
            end = _fence_end(lines, index, opener[0])
            blocks += [markdown_run, _Code(tuple(lines[index : end + 1]))]
            markdown_run = []
            index = end + 1
        elif _ESM_START.match(line):
            end = _esm_end(lines, index)
            for name, target in _PARTIAL_IMPORT.findall("\n".join(lines[index:end])):
                partial_components[name] = source_dir / target
            markdown_run.append("")
            index = end
        else:
            markdown_run.append(line)
            index += 1
    blocks.append(markdown_run)
    return [block for block in blocks if block], partial_components


def _line_event(line: str, slugger: Slugger) -> _Event:
    if line.startswith(_API_TABLE_OPEN):
        return _Marker("table_open", line.removeprefix(_API_TABLE_OPEN).strip())
    if line.startswith(_API_TABLE_CLOSE):
        return _Marker("table_close")
    heading = _ATX_HEADING.match(line)
    if heading:
        return _heading_event(len(heading.group(1)), heading.group(2) or "", slugger)
    if _THEMATIC_BREAK.match(line):
        return _Marker("thematic_break", line)
    if _ADMONITION_CLOSE.match(line):
        return ""
    admonition = _ADMONITION_OPEN.match(line)
    if admonition:
        indent, kind, rest = admonition.groups()
        parts = _ADMONITION_REST.match(rest)
        title = parts["bracket"] if parts["bracket"] is not None else parts["rest"]
        return f"{indent}{kind.capitalize()}: {title}".rstrip() if title else f"{indent}{kind.capitalize()}:"
    return line


def _heading_event(level: int, raw_text: str, slugger: Slugger) -> _Heading:
    text = _CLOSING_HASHES.sub("", raw_text)
    explicit = _EXPLICIT_ID.search(text)
    if explicit:
        # An explicit {#id} is used as is and, as in Docusaurus, does not
        # count towards the slugger's duplicates.
        text = text[: explicit.start()]
        return _Heading(level, _markdown_to_plain(text), explicit.group(1).strip())
    return _Heading(level, _markdown_to_plain(text), slugger.slug(text))


def _content_title(events: list[_Event]) -> str | None:
    """The first heading's text if it is an H1 above any thematic break (Docusaurus' contentTitle)."""
    for event in events:
        if isinstance(event, _Heading):
            return event.text if event.level == 1 else None
        if isinstance(event, _Marker) and event.kind == "thematic_break":
            return None
    return None


# --------------------------------------------------------------------------
# Sections

_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@dataclass
class _SectionDraft:
    heading_path: tuple[str, ...]
    anchor: str | None
    level: int
    parts: list[str | _Code] = field(default_factory=list)
    option_rows: list[Section] = field(default_factory=list)

    def finish(self) -> list[Section]:
        """This section followed by its APITable option rows."""
        own = Section(self.heading_path, self.anchor, self.level, _join_text(self.parts))
        return [own, *self.option_rows]


def _join_text(parts: list[str | _Code]) -> str:
    """Section body: markdown lines right-stripped, blank runs collapsed; code verbatim."""
    lines: list[str] = []
    for part in parts:
        if isinstance(part, _Code):
            lines += part.lines
            continue
        line = part.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip("\n")


def _build_sections(events: list[_Event], title: str, *, skip_content_title: bool) -> list[Section]:
    sections: list[Section] = []
    current = _SectionDraft((title,), None, 1)
    open_headings: list[_Heading] = []  # the headings above the current one, H2 and deeper
    root = title
    table_lines: list[str] | None = None  # lines inside an <APITable>, while in one
    table_name = ""
    for event in events:
        if isinstance(event, _Marker) and event.kind == "table_open":
            table_lines, table_name = [], event.name
        elif isinstance(event, _Marker) and event.kind == "table_close":
            if table_lines is not None:
                _add_api_table(current, table_lines, table_name)
            table_lines = None
        elif isinstance(event, _Heading):
            if skip_content_title:
                skip_content_title = False  # the page's H1 is its title, not a section
                continue
            sections += current.finish()
            if event.level == 1:
                root, open_headings = event.text, []
                path: tuple[str, ...] = (root,)
            else:
                while open_headings and open_headings[-1].level >= event.level:
                    open_headings.pop()
                open_headings.append(event)
                path = (root, *(heading.text for heading in open_headings))
            current = _SectionDraft(path, event.anchor, event.level)
        elif isinstance(event, _Marker):  # thematic break: plain text from here on
            current.parts.append(event.name)
        elif table_lines is not None and isinstance(event, str):
            table_lines.append(event)
        else:
            current.parts.append(event)
    if table_lines is not None:  # an unclosed <APITable>: keep what it held
        _add_api_table(current, table_lines, table_name)
    sections += current.finish()
    return sections


def _add_api_table(section: _SectionDraft, lines: list[str], table_name: str) -> None:
    """Turn each option row of an <APITable> into its own section.

    The site's APITable component gives every body row the id
    ``<name>-<option>`` (or ``<option>`` for a table without ``name``), where
    the option is the first text of the row's first cell. Each row section
    carries the header row so it reads on its own. Lines that are not such
    rows stay in the enclosing section.
    """
    table_start = next(
        (
            index
            for index in range(len(lines) - 1)
            if lines[index].lstrip().startswith("|") and _TABLE_SEPARATOR.match(lines[index + 1])
        ),
        None,
    )
    if table_start is None:
        section.parts += lines
        return
    header, separator = lines[table_start].strip(), lines[table_start + 1].strip()
    section.parts += lines[:table_start]
    for offset, line in enumerate(lines[table_start + 2 :], start=table_start + 2):
        if not line.lstrip().startswith("|"):
            section.parts += lines[offset:]  # the table has ended
            return
        option = _first_cell_text(line)
        if not option:
            section.parts.append(line)
            continue
        section.option_rows.append(
            Section(
                heading_path=(*section.heading_path, option),
                anchor=f"{table_name}-{option}" if table_name else option,
                level=section.level + 1,
                text=f"{header}\n{separator}\n{line.strip()}",
            )
        )


def _first_cell_text(row: str) -> str:
    """The first piece of text in a table row's first cell (React's first text child)."""
    cells = _UNESCAPED_PIPE.split(row.strip())
    first_cell = cells[1] if row.strip().startswith("|") and len(cells) > 1 else cells[0]
    tokens = _INLINE_MARKDOWN.parseInline(first_cell.strip().replace("\\|", "|"))
    for token in tokens[0].children or []:
        text = _token_text(token).strip()
        if text:
            return text
    return ""
