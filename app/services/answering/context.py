"""What an extracted unit needs to make sense, and what the reader has already been shown.

A sentence that continues another ("However, ...") is quoted with the one before it or not at
all; one that points at what follows ("the following example") only with that code; one that
only sends the reader elsewhere ("See the guide for more information") never. `Said` holds
the previous answers and the selection, so an answer never shows them again.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from app.services.answering.composing import Section, normalised, one_line
from app.services.answering.units import Unit

_POINTS_AWAY = re.compile(
    r"\b(?:following|below|above|as follows|here (?:are|is)|these (?:steps|options)"
    r"|two approaches|several ways)\b",
    re.I,
)
_CONTEXTUAL_START = re.compile(
    # "It is easy to ..." refers to nothing
    r"^(?!It(?:'s| is| was) (?:\w+ )?(?:to|that|possible|recommended|easy|important)\b)"
    r"(?:This|That|These|Those|It|Its|They|Them|Then|Also|However|So|Otherwise|And|But|Or|Because|Instead|"
    r"Alternatively|Similarly|Likewise|In that case|In this case|For (?:this|that) reason)\b"
)
# A sentence that only sends the reader elsewhere ("See the GitHub documentation for more
# information", "If you only need it running, read Quick start"): it says nothing to do.
_POINTER = re.compile(
    r"^(?:(?:if [^,]{1,80}, )?(?:you can |please )?(?:see|read|refer to|check out|follow|visit|consult"
    r"|learn more)\b"
    r"|for (?:more|further) (?:details|information|info)\b)",
    re.I,
)


@dataclass(frozen=True)
class Said:
    """What the reader already has: the previous answers and the selection, normalised."""

    previous: str
    selection: str

    def shows(self, excerpt: list[str]) -> bool:
        """Whether a code excerpt is in the previous answers already: every line of it, or, as
        text shows it, its one line (cut at CODE_CHARS: a long line was only shown in part)."""
        lines = [normalised(line) for line in excerpt if line != "…"]
        lines = [line for line in lines if line]
        if not (lines and self.previous):
            return False
        return all(line in self.previous for line in lines) or normalised(one_line(excerpt)) in self.previous

    def covers(self, unit: Unit) -> bool:
        if unit.kind == "code":
            # A snippet already shown (a window of it): three of its distinctive lines, or all, are
            # there; a line of boilerplate ("export default {") alone is not the same snippet.
            lines = {normalised(line) for line in unit.code} - {""}
            distinctive = {line for line in lines if len(line) >= 12} or lines
            shown = [line for line in distinctive if line in self.previous or line in self.selection]
            return bool(distinctive) and len(shown) >= min(3, len(distinctive))
        text = normalised(unit.text)
        if not text:
            return False
        if self.previous and text in self.previous:
            return True
        if self.selection:
            if text in self.selection or (len(self.selection) > 40 and self.selection in text):
                return True
            words = set(text.split())
            return len(words & set(self.selection.split())) >= 0.8 * len(words)
        return False


def with_context(units: list[Unit], chosen: list[int], said: Said) -> list[int]:
    """Each chosen unit with what it needs to make sense, or without it when that cannot be had."""
    result = set(chosen)
    for i in sorted(chosen):
        unit = units[i]
        if unit.kind not in ("sentence", "row"):
            continue
        if _CONTEXTUAL_START.match(unit.text):
            before = i - 1
            if before >= 0 and units[before].kind in ("sentence", "row") and not said.covers(units[before]):
                result.add(before)
            elif not (before >= 0 and before in result):
                result.discard(i)  # "However, ..." with nothing before it
        if _POINTS_AWAY.search(unit.text):
            # "The following example ...": only with the code it points at.
            following = next((j for j in range(i + 1, len(units)) if units[j].kind == "code"), None)
            if following is None or following not in result:
                result.discard(i)
    return sorted(result)


def points_elsewhere(unit: Unit) -> bool:
    """Whether a sentence only sends the reader elsewhere (it is never quoted, nor an intro)."""
    return unit.kind == "sentence" and len(unit.text) < 160 and bool(_POINTER.match(unit.text))


def topic_of(sections: list[Section], previous: str) -> int | None:
    """The section the previous answer quoted most, if any."""
    if not previous:
        return None
    counts = Counter(
        s.index for s in sections for u in s.units if u.kind != "code" and normalised(u.text) in previous
    )
    return counts.most_common(1)[0][0] if counts else None
