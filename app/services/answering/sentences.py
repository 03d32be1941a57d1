"""A passage's quotable sentences: whole, clean sentences of its prose, never code, tables or
fragments (markdown-it parses the passage into blocks; only prose is split into sentences).

What counts as a sentence the offline answerer may quote:
- paragraphs, and list items that are whole sentences; a short list after "...:" is folded into
  its sentence ("options: A, B and C."), and a one-line command after "...:" completes it;
- a reference table's row as "`name` (default `x`): Its description." when the row has one;
- a sentence ends with a full stop, has a few words, is not cut inside brackets, is not a
  question, and is not mostly code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Sentence:
    """A whole sentence of a passage: as plain text and as Markdown (code spans kept)."""

    text: str
    markdown: str
    passage: int  # index into the request's passages
    position: int  # order within the passage
    row_name: str = ""  # for a table row's description: the row's name (option, field, flag)


@lru_cache(maxsize=2048)
def _sentences_of(text: str) -> tuple[tuple[str, str, str], ...]:
    """(plain, markdown, row name) of every whole, clean sentence of a passage, in book order."""
    out: list[tuple[str, str, str]] = []
    for markdown, row_name in _prose_blocks(_PARSER.parse(text)):
        for piece in _split(markdown):
            sentence = _clean(piece)
            if sentence:
                out.append((sentence.replace("`", ""), sentence, row_name))
    return tuple(out)


def passage_sentences(text: str, passage: int = 0) -> list[Sentence]:
    """The quotable sentences of one passage."""
    return [Sentence(plain, md, passage, i, row) for i, (plain, md, row) in enumerate(_sentences_of(text))]


def _prose_blocks(tokens: list[Token]) -> list[tuple[str, str]]:
    """Paragraphs (and whole-sentence list items) as Markdown with code spans only.

    Tables, code, HTML and headings are skipped; a short list after a paragraph ending in ":"
    is folded into that paragraph as "A, B and C.", and a one-line command after "...:" as
    "...: `command`.", so the sentence is not left dangling.
    """
    blocks: list[tuple[str, str]] = []  # (markdown, the table row's name or "")
    i = 0
    list_depth = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "table_open":
            end = next(j for j in range(i, len(tokens)) if tokens[j].type == "table_close")
            blocks.extend(_table_sentences(tokens[i:end]))
            i = end + 1
            continue
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            if list_depth == 0 and blocks and blocks[-1][0].rstrip().endswith(":"):
                items, end = _list_items(tokens, i)
                if 1 < len(items) <= 8 and all(0 < len(item.split()) <= 10 for item in items):
                    intro = blocks[-1][0].rstrip()[:-1].rstrip()
                    blocks[-1] = (intro + ": " + _series(items) + ".", "")
                    i = end + 1
                    continue
            list_depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif token.type == "fence" and i and tokens[i - 1].type == "paragraph_close" and blocks:
            # "Run this command:" followed by a one-line command: the command completes the sentence.
            intro, row = blocks[-1]
            command = token.content.strip()
            shell = token.info.split(" ")[0] in ("", "bash", "sh", "shell", "console", "powershell")
            if (
                intro.rstrip().endswith(":")
                and len(intro.split()) >= MIN_WORDS
                and shell
                and command
                and "\n" not in command
                and len(command) <= 80
            ):
                blocks[-1] = (f"{intro.rstrip()} `{command.lstrip('$ ')}`.", row)
        elif token.type == "heading_open":
            i += 3  # heading_open, inline, heading_close: headings are labels, not answers
            continue
        elif token.type == "inline":
            text = _inline_markdown(token)
            if text:
                blocks.append((text, ""))
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
        if default and default not in ("-", "—") and default != description:
            name = f"{name} (default {default})"
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


def _clean(sentence: str) -> str | None:
    """The sentence as it will be quoted, or None when it cannot stand on its own."""
    sentence = _SYMBOLS.sub("", sentence).strip()
    sentence = _LABEL.sub("", sentence)
    sentence = re.sub(r"(?<![.])\.\.(?!\.)", ".", sentence)  # "`0.0.0.0`.." -> one full stop
    sentence = re.sub(r"\s+([,.;:!?])", r"\1", sentence)  # a dropped image or tag left a space
    if not _ENDS_WELL.search(sentence) or sentence.count("`") % 2 or sentence.endswith(("..", "…")):
        return None
    if sentence.rstrip("\"'”’)").endswith("?"):
        return None  # the book asking, not answering
    if sentence.count("(") != sentence.count(")") or sentence.count("[") != sentence.count("]"):
        return None  # begun or ended inside brackets: cut from a longer sentence
    words = sentence.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    if len(re.findall(r"[^\W\d_]{2,}", re.sub(r"`[^`]*`", " ", sentence))) < MIN_WORDS - 1:
        return None  # mostly code (words outside code spans are few): a command or a snippet
    if not (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in "`\"'“"):
        return None  # a fragment (the rest of a sentence cut elsewhere)
    if re.search(r":\s*[.!?]$|[,;:]\s*[.!?]?$", sentence):
        return None
    return sentence
