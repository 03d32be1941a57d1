"""Code fences: shared by the page reader and the chunker, which must never cut inside one."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def fence_end(lines: list[str], start: int, fence: str) -> int:
    """Index of the closing fence line after ``start`` (len(lines) if the fence is never closed)."""
    end = start + 1
    while end < len(lines) and not closes_fence(lines[end], fence):
        end += 1
    return end


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block, opening and closing fence lines included, kept verbatim."""

    lines: tuple[str, ...]
