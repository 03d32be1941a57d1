"""Heading-aware chunks of a Docusaurus book.

One chunk per section (see ``docusaurus.Section``) when it fits in
``max_tokens``. A longer section is cut on paragraph and code-block
boundaries; a code block that alone is too long is cut on lines, each piece
re-opened and closed with the block's own fence and info string; a paragraph
that alone is too long is cut on lines, then sentences, then words, and only
as a last resort between two tokens. Each continuation piece starts with the
end of the previous piece (its last lines or sentences, up to
``overlap_tokens``) so that a sentence cut from its context is still found.

No text is ever dropped: the pieces of a section, read in order, hold every
token of its text in order (pieces only add overlap, fences and repeated
table headers).

A section with an empty body yields no chunk; its heading still appears in
the ``heading_path`` of the sections below it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from app.services.ingestion.docusaurus import Page, Section, closes_fence, parse_fence_opener
from app.services.retrieval.sparse import CJK_CHARS

__all__ = ["Chunk", "chunk_book", "chunk_page", "count_tokens"]


@dataclass(frozen=True)
class Chunk:
    """A piece of a section, with everything needed to index and cite it.

    ``section_occurrence`` tells apart two sections of one page that share an
    anchor (a heading and an APITable row, or a repeated explicit ``{#id}``):
    0 for the first, 1.. for the next ones. It only takes part in ``key``.
    """

    file: str
    title: str
    heading_path: tuple[str, ...]
    anchor: str | None
    url: str
    route: str
    text: str
    tokens: int
    content_hash: str
    chunk_index: int
    part: int
    description: str | None
    section_occurrence: int = 0

    @property
    def key(self) -> str:
        """Stable id, unique within a book: ``file#anchor#part``.

        A page's n-th repeat of an anchor gives ``file#anchor~n#part``.
        """
        anchor = self.anchor or ""
        if self.section_occurrence:
            anchor = f"{anchor}~{self.section_occurrence}"
        return f"{self.file}#{anchor}#{self.part}"

    @property
    def heading(self) -> str:
        """The heading path as one line: ``"Page title > Section > Subsection"``."""
        return " > ".join(self.heading_path)

    @property
    def holds_code(self) -> bool:
        """Whether the chunk quotes a code block (a command, an example configuration)."""
        return _FENCE_LINE.search(self.text) is not None


# Part of every content hash: raising it re-writes each point once, so a payload field added
# later reaches an index built before it (2: "code").
PAYLOAD_FORMAT = 2
_FENCE_LINE = re.compile(r"^\s*(?:```|~~~)", re.MULTILINE)

# CJK characters each count as a token (a BPE tokenizer spends about one per
# character); elsewhere a run of letters/digits is one token, and so is a run
# of one punctuation character ("-----", "```", "...").
_TOKEN = re.compile(rf"[{CJK_CHARS}]|[^\W{CJK_CHARS}]+|([^\w\s])\1*")


def count_tokens(text: str) -> int:
    """Approximate token count: words, CJK characters and punctuation runs each count 1.

    No tokenizer download: close to BPE counts for English prose, somewhat
    higher for punctuation-heavy code. Counts add up over text joined by
    whitespace, which the splitter relies on.
    """
    return sum(1 for _ in _TOKEN.finditer(text))


def chunk_book(pages: Iterable[Page], *, include_unlisted: bool = False, **options: Any) -> list[Chunk]:
    """Chunks of every page, in page order; ``options`` go to ``chunk_page``.

    Unlisted pages are skipped unless ``include_unlisted``: Docusaurus serves
    them at their URL but keeps them out of sidebars, sitemaps and search
    (noindex), and an assistant answering from the book is a search surface.
    """
    return [
        chunk
        for page in pages
        if include_unlisted or not page.unlisted
        for chunk in chunk_page(page, **options)
    ]


def chunk_page(
    page: Page, *, max_tokens: int = 350, overlap_tokens: int = 40, min_tokens: int = 0
) -> list[Chunk]:
    """The chunks of one page, in reading order.

    A section shorter than ``min_tokens`` tokens is appended to the previous
    chunk of the page (under a markdown heading line with its own heading)
    when the result still fits in ``max_tokens``; it then has no chunk, nor
    anchor, of its own. The default, 0, keeps every section separate.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    chunks: list[Chunk] = []
    anchors_seen: Counter[str | None] = Counter()
    for section in page.sections:
        text = section.text.strip()
        if not text:
            continue
        tokens = count_tokens(text)
        if chunks and tokens < min_tokens and _can_absorb(chunks[-1], section, max_tokens):
            chunks[-1] = _absorb(chunks[-1], section, page)
            continue
        occurrence = anchors_seen[section.anchor]
        anchors_seen[section.anchor] += 1
        for part, piece in enumerate(_split_section_text(text, tokens, max_tokens, overlap_tokens)):
            chunks.append(_make_chunk(page, section, piece, len(chunks), part, occurrence))
    return chunks


def _make_chunk(
    page: Page, section: Section, text: str, chunk_index: int, part: int, occurrence: int
) -> Chunk:
    url = f"{page.url}#{section.anchor}" if section.anchor else page.url
    return Chunk(
        file=page.file,
        title=page.title,
        heading_path=section.heading_path,
        anchor=section.anchor,
        url=url,
        route=page.route,
        text=text,
        tokens=count_tokens(text),
        content_hash=_content_hash(text, section.heading_path, url, page.title, page.description),
        chunk_index=chunk_index,
        part=part,
        description=page.description,
        section_occurrence=occurrence,
    )


def _content_hash(
    text: str, heading_path: tuple[str, ...], url: str, title: str, description: str | None
) -> str:
    # Everything that is indexed or shown with the chunk: a change to any of
    # these must re-index it, and so must a new PAYLOAD_FORMAT.
    payload = json.dumps(
        [PAYLOAD_FORMAT, text, list(heading_path), url, title, description], ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _absorbed_text(section: Section) -> str:
    return f"{'#' * max(section.level, 2)} {section.heading_path[-1]}\n\n{section.text.strip()}"


def _can_absorb(previous: Chunk, section: Section, max_tokens: int) -> bool:
    return previous.tokens + count_tokens(_absorbed_text(section)) <= max_tokens


def _absorb(previous: Chunk, section: Section, page: Page) -> Chunk:
    text = f"{previous.text}\n\n{_absorbed_text(section)}"
    return replace(
        previous,
        text=text,
        tokens=count_tokens(text),
        content_hash=_content_hash(text, previous.heading_path, previous.url, page.title, page.description),
    )


# --------------------------------------------------------------------------
# Splitting one section's text


@dataclass(frozen=True)
class _Unit:
    """A piece of section text that is never cut again when packing."""

    text: str
    tokens: int
    kind: str  # "prose" | "code" | "table"


_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+")


def _split_section_text(text: str, tokens: int, max_tokens: int, overlap_tokens: int) -> list[str]:
    if tokens <= max_tokens:
        return [text]
    units = [unit for block in _blocks(text) for unit in _fit_block(block, max_tokens)]
    return _pack(units, max_tokens, overlap_tokens)


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """Split text into ("code", lines) fenced blocks and ("prose", lines) paragraphs."""
    lines = text.split("\n")
    blocks: list[tuple[str, list[str]]] = []
    paragraph: list[str] = []
    index = 0
    while index < len(lines):
        opener = parse_fence_opener(lines[index])
        if opener is not None:
            end = index + 1
            while end < len(lines) and not closes_fence(lines[end], opener[0]):
                end += 1
            if paragraph:
                blocks.append(("prose", paragraph))
                paragraph = []
            blocks.append(("code", lines[index : end + 1]))
            index = end + 1
            continue
        if lines[index].strip():
            paragraph.append(lines[index])
        elif paragraph:
            blocks.append(("prose", paragraph))
            paragraph = []
        index += 1
    if paragraph:
        blocks.append(("prose", paragraph))
    return blocks


def _fit_block(block: tuple[str, list[str]], max_tokens: int) -> list[_Unit]:
    """The block as units of at most ``max_tokens`` tokens each."""
    kind, lines = block
    text = "\n".join(lines)
    tokens = count_tokens(text)
    if (
        kind == "prose"
        and len(lines) > 2
        and lines[0].lstrip().startswith("|")
        and _TABLE_SEPARATOR.match(lines[1])
    ):
        kind = "table"
    if tokens <= max_tokens:
        return [_Unit(text, tokens, kind)]
    if kind == "code":
        return _split_code(lines, max_tokens)
    if kind == "table":
        return _split_table(lines, max_tokens)
    return [_Unit(piece, count_tokens(piece), "prose") for piece in _split_prose(text, max_tokens)]


def _split_code(lines: list[str], max_tokens: int) -> list[_Unit]:
    """Cut a fenced block on lines; every piece is a complete fenced block."""
    opener = lines[0]
    opened = parse_fence_opener(opener)
    assert opened is not None  # a code unit starts with its fence
    fence = opened[0]
    indent = opener[: len(opener) - len(opener.lstrip())]
    closer = indent + fence
    body = lines[1:-1] if len(lines) > 1 and closes_fence(lines[-1], fence) else lines[1:]
    budget = max(1, max_tokens - count_tokens(opener) - count_tokens(closer))
    pieces = _greedy_join(_split_lines(body, budget), "\n", budget)
    return [
        _Unit(text, count_tokens(text), "code")
        for text in (f"{opener}\n{piece}\n{closer}" for piece in pieces)
    ]


def _split_table(lines: list[str], max_tokens: int) -> list[_Unit]:
    """Cut a markdown table between rows; every piece repeats the header rows.

    A row too long to share a piece with the header stands alone (and is cut
    like prose only if it does not fit even alone).
    """
    header = "\n".join(lines[:2])
    budget = max_tokens - count_tokens(header)
    if budget < 1:  # a header too long to repeat: cut the table like any paragraph
        return [
            _Unit(piece, count_tokens(piece), "prose") for piece in _split_prose("\n".join(lines), max_tokens)
        ]
    units: list[_Unit] = []
    rows: list[str] = []
    for row in lines[2:]:
        if count_tokens(row) <= budget:
            rows.append(row)
            continue
        units += _table_units(header, rows, budget)
        if not units:  # the header still leads the table
            units.append(_Unit(header, count_tokens(header), "table"))
        rows = []
        units += [_Unit(piece, count_tokens(piece), "table") for piece in _split_prose(row, max_tokens)]
    return units + _table_units(header, rows, budget)


def _table_units(header: str, rows: list[str], budget: int) -> list[_Unit]:
    pieces = _greedy_join(rows, "\n", budget) if rows else []
    return [_Unit(text, count_tokens(text), "table") for text in (f"{header}\n{piece}" for piece in pieces)]


def _split_lines(lines: list[str], max_tokens: int) -> list[str]:
    """Lines, each longer one cut into pieces of at most ``max_tokens``."""
    return [piece for line in lines for piece in _split_prose(line, max_tokens)]


# Finer and finer ways to cut prose: lines, sentences, words.
_PROSE_SPLITTERS: tuple[tuple[Callable[[str], list[str]], str], ...] = (
    (lambda text: text.split("\n"), "\n"),
    (_SENTENCE_END.split, " "),
    (str.split, " "),
)


def _split_prose(text: str, max_tokens: int, level: int = 0) -> list[str]:
    """Cut text into pieces of at most ``max_tokens``, at the coarsest boundary that works."""
    if count_tokens(text) <= max_tokens:
        return [text]
    for split, separator in _PROSE_SPLITTERS[level:]:
        level += 1
        parts = [part for part in split(text) if part.strip()]
        if len(parts) > 1:
            pieces = [piece for part in parts for piece in _split_prose(part, max_tokens, level)]
            return _greedy_join(pieces, separator, max_tokens)
    return _cut_between_tokens(text, max_tokens)


def _cut_between_tokens(text: str, max_tokens: int) -> list[str]:
    """Last resort for a single giant word: cut right before every ``max_tokens``-th token."""
    starts = [match.start() for match in _TOKEN.finditer(text)][max_tokens::max_tokens]
    bounds = [0, *starts, len(text)]
    return [text[begin:end] for begin, end in pairwise(bounds)]


def _greedy_join(pieces: list[str], separator: str, max_tokens: int) -> list[str]:
    """Join consecutive pieces with ``separator`` while the result fits in ``max_tokens``."""
    joined: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for piece in pieces:
        tokens = count_tokens(piece)
        if current and current_tokens + tokens > max_tokens:
            joined.append(separator.join(current))
            current, current_tokens = [], 0
        current.append(piece)
        current_tokens += tokens
    if current:
        joined.append(separator.join(current))
    return joined


def _pack(units: list[_Unit], max_tokens: int, overlap_tokens: int) -> list[str]:
    """Pack units into pieces of at most ``max_tokens``, each continuation led by an overlap."""
    pieces: list[list[_Unit]] = []
    current: list[_Unit] = []
    current_tokens = 0
    for unit in units:
        if current and current_tokens + unit.tokens > max_tokens:
            pieces.append(current)
            overlap = _overlap(current[-1], overlap_tokens)
            # The overlap is a courtesy: it is left out when it would not fit.
            current = [overlap] if overlap and overlap.tokens + unit.tokens <= max_tokens else []
            current_tokens = sum(item.tokens for item in current)
        current.append(unit)
        current_tokens += unit.tokens
    pieces.append(current)
    return ["\n\n".join(unit.text for unit in piece) for piece in pieces]


def _overlap(unit: _Unit, overlap_tokens: int) -> _Unit | None:
    """The end of a prose unit (whole lines, else whole sentences) within ``overlap_tokens``.

    Code and table pieces give no overlap: half a code block or rows without
    their header would read as something they are not.
    """
    if unit.kind != "prose" or overlap_tokens <= 0:
        return None
    for parts, separator in ((unit.text.split("\n"), "\n"), (_SENTENCE_END.split(unit.text), " ")):
        kept: list[str] = []
        tokens = 0
        for part in reversed(parts):
            part_tokens = count_tokens(part)
            if tokens + part_tokens > overlap_tokens:
                break
            kept.insert(0, part)
            tokens += part_tokens
        if kept and tokens:
            return _Unit(separator.join(kept), tokens, "prose")
    return None
