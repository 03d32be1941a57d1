"""A page body as sections: the text under each heading, with the heading's id.

The body becomes a flat list of events (headings, text lines, code blocks, markers), with
markdown partials inlined where used; the sections are built from those events, plus one small
section per option row of an ``<APITable>``, whose rows the site gives an id too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
from markdown_it import MarkdownIt

from app.services.ingestion.docusaurus.fences import CodeBlock
from app.services.ingestion.docusaurus.mdx import (
    API_TABLE_CLOSE,
    API_TABLE_OPEN,
    MARK,
    PARTIAL,
    MdxCleaner,
    split_code_and_esm,
    unwrap_mdx_code_blocks,
)
from app.services.ingestion.docusaurus.slugs import Slugger, markdown_to_plain, plain_text_pieces


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


# --------------------------------------------------------------------------
# Events: the page as a flat list of headings, text lines and code blocks

_ADMONITION_OPEN = re.compile(r"^(\s*):{3,}([A-Za-z][\w-]*)(.*)$")
_ADMONITION_CLOSE = re.compile(r"^\s*:{3,}\s*$")
_ADMONITION_REST = re.compile(r"^\s*(?:\[(?P<bracket>.*)\])?\s*(?:\{[^{}]*\})?\s*(?P<rest>.*?)\s*$")
_EXPLICIT_ID = re.compile(r"\s*\{#([^{}]+)\}\s*$")

# What is a heading (ATX or setext) or a thematic break is markdown-it's call, as in CommonMark
# and GFM; MDX has neither indented code nor HTML blocks (its JSX is gone by then). Only the
# block structure is needed: inline parsing, most of the work, is off.
_BLOCK_PARSER = (
    MarkdownIt("commonmark").enable("table").disable(["code", "html_block", "inline", "text_join"])
)


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str  # plain text
    anchor: str


@dataclass(frozen=True)
class _Block:
    """A heading or thematic break found by the block parser, by the lines it spans."""

    end: int  # the index after its last line
    level: int  # the heading's depth; 0 for a thematic break
    text: str = ""  # the heading's markdown text


@dataclass(frozen=True)
class _Marker:
    kind: str  # "table_open" | "table_close" | "thematic_break"
    name: str = ""


_Event = _Heading | CodeBlock | _Marker | str  # a str is one line of markdown text

_MAX_PARTIAL_DEPTH = 5


def body_events(markdown: str, source_dir: Path, seen: frozenset[Path]) -> list[_Event]:
    """The page body as events; partials imported from .md/.mdx files are inlined.

    A partial renders inside the page on the site, so its text belongs to the
    page; its headings get ids from their own slugger, as on the site (an
    imported MDX file is a separate document).
    """
    text = markdown.replace(MARK, "").replace("\r\n", "\n").replace("\r", "\n")
    lines = unwrap_mdx_code_blocks(text.split("\n"))
    blocks, partial_components = split_code_and_esm(lines, source_dir)
    cleaner = MdxCleaner(partial_components)
    slugger = Slugger()
    events: list[_Event] = []
    for block in blocks:
        if isinstance(block, CodeBlock):
            events.append(block)
        else:
            cleaned = cleaner.clean("\n".join(block)).split("\n")
            events += _markdown_events(cleaned, cleaner, slugger, seen)
    return events


def _markdown_events(
    lines: list[str], cleaner: MdxCleaner, slugger: Slugger, seen: frozenset[Path]
) -> list[_Event]:
    """Cleaned markdown lines as events: a heading is one event however many lines it spans."""
    structure = _headings_and_breaks(lines)
    events: list[_Event] = []
    index = 0
    while index < len(lines):
        line, found = lines[index], structure.get(index)
        if line.startswith(PARTIAL):
            partial = cleaner.partials_used[int(line.removeprefix(PARTIAL))]
            events += _partial_events(partial, seen)
        elif found is not None and found.level:
            events.append(_heading_event(found.level, found.text, slugger))
            index = found.end
            continue
        elif found is not None:
            events.append(_Marker("thematic_break", line))
        else:
            events.append(_line_event(line))
        index += 1
    return events


def _headings_and_breaks(lines: list[str]) -> dict[int, _Block]:
    """The headings and thematic breaks among these lines, by the index of their first line.

    Lines MDX owns (markers, admonition fences) are blank to the parser: they end a paragraph,
    so the text next to one is never read as a setext heading's.
    """
    source = "\n".join("" if _owned_by_mdx(line) else line for line in lines)
    tokens = _BLOCK_PARSER.parse(source)
    found: dict[int, _Block] = {}
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            found[token.map[0]] = _Block(token.map[1], int(token.tag[1:]), tokens[index + 1].content)
        elif token.type == "hr" and token.map:
            found[token.map[0]] = _Block(token.map[1], 0)
    return found


def _owned_by_mdx(line: str) -> bool:
    return line.startswith(MARK) or bool(_ADMONITION_CLOSE.match(line) or _ADMONITION_OPEN.match(line))


def _partial_events(partial: Path, seen: frozenset[Path]) -> list[_Event]:
    resolved = partial.resolve()
    if resolved in seen or len(seen) > _MAX_PARTIAL_DEPTH or not resolved.is_file():
        return []  # an import cycle or a missing file renders nothing either
    content = frontmatter.loads(resolved.read_text(encoding="utf-8-sig")).content
    return body_events(content, resolved.parent, seen | {resolved})


def _line_event(line: str) -> _Event:
    if line.startswith(API_TABLE_OPEN):
        return _Marker("table_open", line.removeprefix(API_TABLE_OPEN).strip())
    if line.startswith(API_TABLE_CLOSE):
        return _Marker("table_close")
    if _ADMONITION_CLOSE.match(line):
        return ""
    admonition = _ADMONITION_OPEN.match(line)
    if admonition:
        indent, kind, rest = admonition.groups()
        parts = _ADMONITION_REST.match(rest)
        assert parts is not None  # the pattern matches any one line
        title = parts["bracket"] if parts["bracket"] is not None else parts["rest"]
        return f"{indent}{kind.capitalize()}: {title}".rstrip() if title else f"{indent}{kind.capitalize()}:"
    return line


def _heading_event(level: int, text: str, slugger: Slugger) -> _Heading:
    explicit = _EXPLICIT_ID.search(text)
    if explicit:
        # An explicit {#id} is used as is and, as in Docusaurus, does not
        # count towards the slugger's duplicates.
        text = text[: explicit.start()]
        return _Heading(level, markdown_to_plain(text), explicit.group(1).strip())
    return _Heading(level, markdown_to_plain(text), slugger.slug(text))


def content_title(events: list[_Event]) -> str | None:
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
    parts: list[str | CodeBlock] = field(default_factory=list)
    option_rows: list[Section] = field(default_factory=list)

    def finish(self) -> list[Section]:
        """This section followed by its APITable option rows."""
        own = Section(self.heading_path, self.anchor, self.level, _join_text(self.parts))
        if self.option_rows and _only_a_lead_in(own.text):
            # "Accepted fields:" says nothing its rows don't: a passage of it would take the
            # place of one that answers.
            return self.option_rows
        return [own, *self.option_rows]


def _only_a_lead_in(text: str) -> bool:
    """Whether a section's own text is no more than one line introducing what follows."""
    return "\n" not in text.strip() and text.strip().endswith(":")


def _join_text(parts: list[str | CodeBlock]) -> str:
    """Section body: markdown lines right-stripped, blank runs collapsed; code verbatim."""
    lines: list[str] = []
    for part in parts:
        if isinstance(part, CodeBlock):
            lines += part.lines
            continue
        line = part.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip("\n")


def build_sections(events: list[_Event], title: str, *, skip_content_title: bool) -> list[Section]:
    """The page's sections in order: the text before the first heading (under the page title),
    then one per heading, each followed by its APITable option rows."""
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
    pieces = (piece.strip() for piece in plain_text_pieces(first_cell.strip().replace("\\|", "|")))
    return next((piece for piece in pieces if piece), "")
