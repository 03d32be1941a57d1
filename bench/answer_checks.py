"""What a reader would notice in an answer: Markdown shown as text, broken sentences, sources
listed but never cited, and whether the right page is cited at all.

Pure functions over the answer's text and `sources` (the widget's `done` event), used by
`bench/eval_answers.py` and unit-tested in tests/unit/test_answer_checks.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

CITATION = re.compile(r"\[(\d+)\]")

# Markdown the widget would show literally (it renders a text node, not Markdown).
_MARKDOWN = {
    "bold or emphasis": re.compile(
        r"(?<![\w*])(\*\*|__)\S(.*?\S)?\1(?![\w*])|(?<![\w*])\*\S[^*\n]*\S\*(?![\w*])"
    ),
    "inline code": re.compile(r"`[^`\n]+`"),
    "code fence": re.compile(r"^\s*(```|~~~)", re.MULTILINE),
    "heading": re.compile(r"^\s{0,3}#{1,6}\s", re.MULTILINE),
    "bullet": re.compile(r"(^|\n)\s*([-*+]|\d+[.)])\s+\S"),
    "table": re.compile(r"^\s*\|.*\|\s*$", re.MULTILINE),
    "link": re.compile(r"\[[^\]]+\]\([^)\s]+\)"),
}

# Text that reads broken once a table, list, URL or code block was dropped from a quote.
_BROKEN = {
    # "Accepted fields: [1]" -- a list or table stood after the colon.
    "dangling colon": re.compile(r":\s*\[\d+\]"),
    # "`--host 0.0.0.0`.. [1]", ",," or ".," -- an ellipsis ("..."), "e.g.,", a relative path
    # ("../docs") and a dot that starts a word (": .venv/bin/flask" in a quoted command) are fine.
    "doubled punctuation": re.compile(r"(?<!\.)\.\.(?![./])|,,|;;|(?<!\b\w)\.,|[,;:]\s*\.(?![\w./])"),
    # "(an example; see the section)" -- a stand-in for something not shown.
    "placeholder": re.compile(
        r"\((an example|example omitted|see (the )?(section|table|code|example|below))", re.I
    ),
    # "Name — Type — Default — Description." -- a table row flattened into a sentence.
    "flattened table row": re.compile(r"[^.\n]* — [^.\n]* — "),
    # "RSS: Atom: JSON:" -- labels whose URLs were dropped.
    "dropped URL": re.compile(r"(?<![\w/])[A-Za-z][\w-]*:\s+[A-Za-z][\w-]*:(\s|$)"),
}


def markdown_markers(text: str) -> list[str]:
    """The kinds of Markdown markup in `text` (empty: plain prose). Citations [n] are not links."""
    return [name for name, pattern in _MARKDOWN.items() if pattern.search(text)]


def broken_text(text: str) -> list[str]:
    """The kinds of broken text in `text` (empty: none found)."""
    return [name for name, pattern in _BROKEN.items() if pattern.search(text)]


def cited_numbers(text: str) -> set[int]:
    """The citation numbers [n] used in `text`."""
    return {int(n) for n in CITATION.findall(text)}


def uncited_sources(text: str, sources: list[dict]) -> list[int]:
    """Numbers (1-based) of the sources listed that the text never cites."""
    cited = cited_numbers(text)
    return [i for i in range(1, len(sources) + 1) if i not in cited]


def cites_gold_page(text: str, sources: list[dict], gold_files: Iterable[str]) -> bool:
    """Whether a source the text cites is one of the pages that answer the question."""
    gold = set(gold_files)
    return any(1 <= n <= len(sources) and sources[n - 1].get("file") in gold for n in cited_numbers(text))


def key_facts_held(text: str, key_facts: list[str], any_of: list[str] | None = None) -> list[bool]:
    """For each key fact, whether the answer holds it (case-insensitive substring). `any_of` lists
    other spellings of one key fact, that key fact included: any of them stands in for it
    (../shared/eval/README.md, "Key facts")."""
    folded = text.casefold()
    spellings = [s.casefold() for s in any_of or []]
    held = []
    for fact in key_facts:
        options = spellings if fact.casefold() in spellings else [fact.casefold()]
        held.append(any(option in folded for option in options))
    return held
