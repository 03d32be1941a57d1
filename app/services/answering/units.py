"""A section's quotable units, in book order: whole sentences, option rows, fields and code.

markdown-it parses the section into blocks; each block gives units the offline answerer may quote:
- prose (paragraphs, list items that are whole sentences) split into sentences; a short list
  after "...:" is folded into its sentence ("options: A, B and C.");
- a reference table's row as "`name` (default `x`): Its description." when the row has one;
- a short "Label: `value`" line ("Type: `'ignore' | 'throw'`") as a field;
- a fenced code block, with the text that introduces it ("Run this command:") and the sentence
  just before it: a command or a config snippet is the how-to a reader came for.

A sentence ends with a full stop, has a few words, is not cut inside brackets, is not a question
and is not mostly code. Indented code (rendered output shown as text) is not quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

MIN_WORDS, MAX_WORDS = 5, 70  # a sentence shorter says too little; longer is a run-on paragraph
_PARSER = MarkdownIt("commonmark").enable("table")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+(?=[A-Z0-9`\"'“(\[])")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|approx|incl|resp|No|Fig)|\b[A-Za-z])\.$")
_ENDS_WELL = re.compile(r"[.!?][\"'”’)]?$")
_LABEL = re.compile(r"^(?:[A-Z][\w'’ ]{0,24}|[^\w\s]{1,3}\s*[\w ]{0,20}):\s+(?=\S)")  # "Note: ", "Tip: "
_SYMBOLS = re.compile(r"^[^\w`\"'(\[]+")  # leading emoji / bullets
_ADMONITION_TITLE = re.compile(r"^(?:Note|Tip|Info|Warning|Danger|Caution|Important):(?: .*)?$")
_CLAUSE_START = re.compile(r"^(?:You|Your|The|A|An|It|Its|To|Use|Add|Set)\b")
_EMOJI_CODE = re.compile(r":[a-z0-9_+-]+:")
_FIELD = re.compile(r"^(?P<label>[A-Z][\w ]{0,20}):\s+(?P<value>`[^`]+`(?:[^`]{0,40}`[^`]+`)*[^`]{0,20})$")
_CODE_CELL = re.compile(r"`[^`]{1,40}`")
_DEFINITION = re.compile(r"^`([^`\s]{1,60})`:\s+\S")
_TITLE = re.compile(r"""\btitle=(?:"([^"]*)"|'([^']*)'|(\S+))""")
# Docusaurus' line-highlighting comments: markers for the site's renderer, not code to copy.
_HIGHLIGHT = re.compile(r"^\s*(?://|#|<!--|\{/\*)\s*highlight-(?:next-line|start|end)\b.*$")
MAX_CODE_LINES = 40  # a longer block is kept whole in the index but trimmed when quoted anyway


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a passage: as plain text and as Markdown (code spans kept).

    kind: "sentence" (prose), "row" (a table row: `row_name` is its option, field or flag),
    "field" ("Type: ..."), or "code" (`code` holds its lines; `intro` is the text that
    introduces it, without its colon; `context` the position of the sentence just before it).
    """

    text: str
    markdown: str
    passage: int  # index into the request's passages
    position: int  # order within the passage
    kind: str = "sentence"
    block: int = 0  # the block (paragraph, list, table, code) it comes from
    row_name: str = ""
    code: tuple[str, ...] = ()
    lang: str = ""
    title: str = ""
    intro: str = ""
    context: int | None = None
    step: bool = False  # a step of a numbered procedure ("1. Find ... 2. Add it to ...")


@dataclass(frozen=True)
class _Block:
    kind: str  # "prose" | "row" | "field" | "code"
    markdown: str
    row_name: str = ""
    code: tuple[str, ...] = ()
    lang: str = ""
    title: str = ""
    intro: str = ""
    step: bool = False


@lru_cache(maxsize=2048)
def _units_of(text: str) -> tuple[Unit, ...]:
    """The units of a passage's text, in book order, as of passage 0 (frozen, so shared)."""
    out: list[Unit] = []
    last_sentence: int | None = None
    last_sentence_block = -2
    for index, block in enumerate(_blocks(_PARSER.parse(text))):
        position = len(out)
        if block.kind == "code":
            context = last_sentence if last_sentence_block == index - 1 else None
            out.append(
                Unit(
                    "\n".join(block.code),
                    "",
                    0,
                    position,
                    "code",
                    index,
                    code=block.code,
                    lang=block.lang,
                    title=block.title,
                    intro=block.intro,
                    context=context,
                )
            )
            continue
        if block.kind == "field":
            out.append(Unit(block.markdown.replace("`", ""), block.markdown, 0, position, "field", index))
            continue
        for piece in _split(block.markdown):
            sentence = _clean(piece, row=block.kind == "row")
            if sentence:
                kind = "row" if block.kind == "row" else "sentence"
                out.append(
                    Unit(
                        sentence.replace("`", ""),
                        sentence,
                        0,
                        len(out),
                        kind,
                        index,
                        row_name=block.row_name,
                        step=block.step,
                    )
                )
                last_sentence, last_sentence_block = len(out) - 1, index
    return tuple(out)


def passage_units(text: str, passage: int = 0) -> list[Unit]:
    """The quotable units of one passage, in book order."""
    units = _units_of(text)
    return list(units) if passage == 0 else [replace(unit, passage=passage) for unit in units]


def passage_sentences(text: str, passage: int = 0) -> list[Unit]:
    """The quotable prose of one passage: its sentences and table rows."""
    return [unit for unit in passage_units(text, passage) if unit.kind in ("sentence", "row")]


def _blocks(tokens: list[Token]) -> list[_Block]:
    """The passage's blocks in order: prose, table rows, fields and fenced code."""
    blocks: list[_Block] = []
    i = 0
    list_depth = 0
    previous_close = ""  # the type of the token that closed the last block
    kinds: list[str] = []  # the lists the current token is in, outermost first
    while i < len(tokens):
        token = tokens[i]
        if token.type == "table_open":
            end = next(j for j in range(i, len(tokens)) if tokens[j].type == "table_close")
            blocks.extend(_Block("row", md, row) for md, row in _table_sentences(tokens[i:end]))
            i = end + 1
            previous_close = "table_close"
            continue
        if token.type in ("bullet_list_open", "ordered_list_open"):
            if (
                list_depth == 0
                and blocks
                and blocks[-1].kind == "prose"
                and blocks[-1].markdown.rstrip().endswith(":")
            ):
                items, end = _list_items(tokens, i)
                if 1 < len(items) <= 8 and all(0 < len(item.split()) <= 10 for item in items):
                    intro = blocks[-1].markdown.rstrip()[:-1].rstrip()
                    blocks[-1] = _Block("prose", intro + ": " + _series(items) + ".")
                    i = end + 1
                    previous_close = "list_close"
                    continue
            list_depth += 1
            kinds.append(token.type)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
            kinds.pop()
        elif token.type == "fence":
            intro = ""
            if previous_close == "paragraph_close" and blocks and blocks[-1].kind == "prose":
                last = _split(blocks[-1].markdown)[-1].strip()
                if last.endswith(":"):
                    # "Run this command:" is the code's own introduction, not a sentence of its own.
                    intro = _SYMBOLS.sub("", _LABEL.sub("", last[:-1].rstrip())).strip()
            info = token.info.strip()
            found = _TITLE.search(info)
            title = next((g for g in found.groups() if g), "") if found else ""
            lines = tuple(
                line for line in token.content.rstrip("\n").split("\n") if not _HIGHLIGHT.match(line)
            )
            if any(line.strip() for line in lines):
                blocks.append(
                    _Block(
                        "code",
                        "",
                        code=lines[:MAX_CODE_LINES],
                        lang=info.split(" ")[0] if info else "",
                        title=title,
                        intro=intro,
                    )
                )
        elif token.type == "heading_open":
            i += 3  # heading_open, inline, heading_close: headings are labels, not answers
            previous_close = "heading_close"
            continue
        elif token.type == "inline":
            text = _inline_markdown(token)
            definition = _DEFINITION.match(text) if list_depth else None
            if not text:
                pass
            elif _FIELD.match(text) and len(text) <= 120:
                blocks.append(_Block("field", text))
            elif definition:
                # "- `banner`: one of `'none'`, ...": an option's row written as a list item.
                blocks.append(_Block("row", text, row_name=definition.group(1)))
            else:
                blocks.append(_Block("prose", text, step=kinds == ["ordered_list_open"]))
        if token.type.endswith("_close") or token.type == "fence":
            previous_close = token.type
        i += 1
    return blocks


def _table_sentences(tokens: list[Token]) -> list[tuple[str, str]]:
    """A reference table's rows as "`name` (default `x`): Its description." where the row has one.

    Rows are never quoted as rows ("a — b — c"); only a description cell that is whole
    sentences is, introduced by the row's name (and its default, if the table has that column).
    """
    rows: list[list[str]] = []
    for token in tokens:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(_inline_markdown(token))
    if len(rows) < 2:
        return []
    header = [cell.casefold() for cell in rows[0]]
    default_column = next((j for j, name in enumerate(header) if "default" in name), None)
    out = []
    for row in rows[1:]:
        if len(row) < 2 or not row[0]:
            continue
        description = max(row[1:], key=len)
        if len(description.split()) < MIN_WORDS or not _ENDS_WELL.search(description):
            continue
        name = row[0]
        default = row[default_column] if default_column is not None and default_column < len(row) else ""
        # Other cells that are one short code span (an error code, a type) qualify the name.
        qualifiers = [
            cell
            for j, cell in enumerate(row[1:], 1)
            if cell != description and j != default_column and _CODE_CELL.fullmatch(cell)
        ]
        if default and default not in ("-", "—") and default != description:
            qualifiers.append(f"default {default}")
        if qualifiers:
            name = f"{name} ({', '.join(qualifiers)})"
        out.append((f"{name}: {description[0].upper()}{description[1:]}", row[0].replace("`", "")))
    return out


def _list_items(tokens: list[Token], start: int) -> tuple[list[str], int]:
    """The items of the list opening at `start` (their text), and the index of its close."""
    depth = 0
    items: list[str] = []
    for i in range(start, len(tokens)):
        token = tokens[i]
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0:
                return items, i
        elif token.type == "inline" and depth == 1:
            items.append(_SYMBOLS.sub("", _inline_markdown(token)).rstrip(" .;,"))
    return items, len(tokens) - 1


def _series(items: list[str]) -> str:
    # Items written as sentences ("You want X") continue the sentence that introduced them.
    items = [_CLAUSE_START.sub(lambda m: m.group(0).lower(), item) for item in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def _inline_markdown(token: Token) -> str:
    """An inline token as text with `code` spans kept and every other marker dropped."""
    out: list[str] = []
    children = token.children or []
    if _ADMONITION_TITLE.match(token.content.split("\n", 1)[0]):
        # "Warning: Some title" on its own line (how ingestion keeps an admonition's title) is a
        # label, not the start of the sentence below it.
        breaks = [i for i, child in enumerate(children) if child.type in ("softbreak", "hardbreak")]
        children = children[breaks[0] + 1 :] if breaks else []
    for child in children:
        if child.type == "text":
            out.append(child.content)
        elif child.type == "code_inline":
            out.append(f"`{child.content}`")
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "image":
            continue
        # link_open/close, em/strong markers and inline HTML add no words.
    return " ".join(_EMOJI_CODE.sub("", "".join(out)).split())


def _split(text: str) -> list[str]:
    """Sentences of a prose block; never splits inside `code` or after "e.g."."""
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start()
        candidate = text[start : match.end()].rstrip()
        if candidate.count("`") % 2 or _ABBREVIATION.search(text[max(start, end - 8) : end]):
            continue
        pieces.append(candidate)
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def _clean(sentence: str, *, row: bool = False) -> str | None:
    """The sentence as it will be quoted, or None when it cannot stand on its own (a row's
    sentence may be mostly code: "`banner`: one of `'none'`, `'unreleased'`.")."""
    sentence = _SYMBOLS.sub("", sentence).strip()
    sentence = _LABEL.sub("", sentence)
    sentence = re.sub(r"(?<![.])\.\.(?!\.)", ".", sentence)  # "`0.0.0.0`.." -> one full stop
    sentence = re.sub(
        r"\s+([,.;:!?])(?=\s|$)", r"\1", sentence
    )  # a dropped image or tag left a space (not "./src")
    if not _ENDS_WELL.search(sentence) or sentence.count("`") % 2 or sentence.endswith(("..", "…")):
        return None
    if sentence.rstrip("\"'”’)").endswith("?"):
        return None  # the book asking, not answering
    if sentence.count("(") != sentence.count(")") or sentence.count("[") != sentence.count("]"):
        return None  # begun or ended inside brackets: cut from a longer sentence
    words = sentence.split()
    if not (3 if row else MIN_WORDS) <= len(words) <= MAX_WORDS:
        return None
    if len(re.findall(r"[^\W\d_]{2,}", re.sub(r"`[^`]*`", " ", sentence))) < (2 if row else MIN_WORDS - 1):
        return None  # mostly code (words outside code spans are few): a command or a snippet
    if not (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in "`\"'“"):
        return None  # a fragment (the rest of a sentence cut elsewhere)
    if re.search(r":\s*[.!?]$|[,;:]\s*[.!?]?$", sentence):
        return None
    return sentence
