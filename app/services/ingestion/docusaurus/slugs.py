"""Heading text and heading ids, as Docusaurus' remark "headings" plugin makes them with
github-slugger.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

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


def markdown_to_plain(markdown_text: str) -> str:
    """The text a heading shows: formatting, backticks, link targets and HTML tags removed."""
    return "".join(plain_text_pieces(markdown_text)).strip()


def plain_text_pieces(markdown_text: str, line_break: str = " ") -> Iterator[str]:
    """The pieces of text an inline markdown snippet shows, in order (a text run, a code span...).

    A line break inside the snippet (a setext heading may span lines) becomes ``line_break``.
    """
    tokens = _INLINE_MARKDOWN.parseInline(markdown_text)
    return (_token_text(token, line_break) for token in tokens[0].children or [])


def _token_text(token: Token, line_break: str) -> str:
    if token.type in ("text", "text_special", "code_inline"):
        return token.content
    if token.type in ("softbreak", "hardbreak"):
        return line_break
    if token.type == "image":
        return "".join(_token_text(child, line_break) for child in token.children or [])
    return ""


def _github_slug(plain_text: str) -> str:
    lowered = plain_text.lower()
    return "".join(char for char in lowered if _kept_by_slugger(char)).replace(" ", "-")


def slugify_heading(text: str) -> str:
    """The id Docusaurus gives a heading with this (markdown) text, ignoring duplicates.

    E.g. ``Using `docusaurus.config.js` [here](x)`` gives ``using-docusaurusconfigjs-here``.
    """
    # The slugger sees the heading's text as remark gives it, line endings included (it drops them).
    return _github_slug("".join(plain_text_pieces(text, line_break="\n")).strip())


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
