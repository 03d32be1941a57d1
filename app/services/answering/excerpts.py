"""Which lines of a code block an answer quotes: the lines that matter, not the whole block.

In Markdown format an excerpt is a fenced block of at most CODE_LINES lines. In text format (the
widget's) it is one line of at most CODE_CHARS, so it must also read plain: YAML folded onto one
line ("on: push: branches:") reads as noise, and a shorter window of the same block may not.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from app.services.answering.composing import CODE_CHARS, INNER_FENCE, NOT_PLAIN, dedent, one_line
from app.services.answering.units import Unit

CODE_LINES = 8  # a quoted code excerpt: the lines that matter, not the whole block
_COMMENT_LINE = re.compile(r"^\s*(?://|#|/\*|<!--|\{/\*)")


def code_excerpt(
    unit: Unit, line_weight: Callable[[str], float], markdown: bool, *, plain_only: bool = False
) -> list[str]:
    """The lines of a code block worth quoting: all of a short block; of a long one, the
    earliest window of CODE_LINES lines holding nearly the most question weight. In text,
    where the excerpt is one line of at most CODE_CHARS, the window's weaker ends go first;
    with `plain_only`, an excerpt that does not read plain gives way to the best window that does."""
    lines = [line.rstrip() for line in unit.code if line.strip()]
    # An inner fence ("```mermaid" in a Markdown example) is not shown in text: it weighs nothing.
    scores = [0.0 if INNER_FENCE.match(line) and not markdown else line_weight(line) for line in lines]
    for k in range(len(lines) - 1):
        if _COMMENT_LINE.match(lines[k]):
            scores[k + 1] += scores[k]  # "// Equivalent to `docsUrl`." is about the next line
    start, end = 0, len(lines)
    if len(lines) > CODE_LINES:
        windows = [sum(scores[k : k + CODE_LINES]) for k in range(len(lines) - CODE_LINES + 1)]
        # The earliest window nearly as good as the best: a block's opening carries its structure.
        start = next(k for k, score in enumerate(windows) if score >= 0.75 * max(windows))
        end = start + CODE_LINES
    while not markdown and end - start > 1 and not _fits_one_line(lines[start:end]):
        if scores[start] < scores[end - 1]:
            start += 1
        else:
            end -= 1
    excerpt = _window(lines, start, end)
    if plain_only and not reads_plain(unit, excerpt):
        plain = [
            (sum(scores[a:b]), -a, a, b)
            for a in range(len(lines))
            for b in range(a + 1, min(len(lines), a + CODE_LINES) + 1)
            if (b - a == 1 or _fits_one_line(lines[a:b])) and reads_plain(unit, _window(lines, a, b))
        ]
        best = max(plain, default=None)  # the most weight, the earliest of equals
        if best is not None and best[0] > 0:  # a window of no question word says nothing
            _, _, start, end = best
            excerpt = _window(lines, start, end)
    return excerpt


def reads_plain(unit: Unit, excerpt: list[str]) -> bool:
    """Whether a code excerpt, after its introduction, can be shown in text format."""
    return not NOT_PLAIN.search(f"{unit.intro.replace('`', '')}: {one_line(excerpt)}")


def _fits_one_line(lines: list[str]) -> bool:
    """Whether lines, as one line of text, fit CODE_CHARS uncut."""
    return len(one_line(lines, cut=False)) < CODE_CHARS


def _window(lines: list[str], start: int, end: int) -> list[str]:
    """Lines start..end of a block, dedented, with "…" where lines are left out."""
    return (["…"] if start else []) + dedent(lines[start:end]) + (["…"] if end < len(lines) else [])
