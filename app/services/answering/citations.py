"""Citations renumbered as they stream: the first passage cited becomes [1], the next new one [2].

The reader's list of sources is then exactly the passages the answer cites, in the order the
text cites them, and every [n] in the text is the n-th entry of that list. A citation can arrive
split across chunks ("[" then "2]", or "[1][" then "3]"), so an open "[" that may still become a
citation is held back until it is decided. "[2, 3]" becomes "[1][2]"; a number that names no
passage is dropped (it would point at nothing). Brackets inside `code` are left alone.
"""

from __future__ import annotations

import re

_CITATION = re.compile(r"\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*")
_CITATION_SO_FAR = re.compile(r"[\d,;\s]{0,24}")


class CitationRenumberer:
    """Rewrites `[n]` in streamed text to order of first appearance; `cited` lists what was cited."""

    def __init__(self, passage_count: int) -> None:
        self.passage_count = passage_count
        self._order: list[int] = []  # passage numbers as given to the answerer, in citing order
        self._buffer = ""
        self._in_code = False

    @property
    def cited(self) -> list[int]:
        """Indices (0-based) into the answerer's passages, in the order the text first cites them."""
        return [number - 1 for number in self._order]

    def feed(self, text: str) -> str:
        """The text that can be emitted now, citations renumbered; an undecided "[..." waits."""
        self._buffer += text
        return self._drain(final=False)

    def finish(self) -> str:
        """The rest, once the stream has ended."""
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> str:
        buf = self._buffer
        out: list[str] = []
        i = 0
        while i < len(buf):
            char = buf[i]
            if char == "`":
                end = i
                while end < len(buf) and buf[end] == "`":
                    end += 1
                if end == len(buf) and not final:
                    break  # the run may go on: its length decides nothing, but keep it whole
                self._in_code = not self._in_code
                out.append(buf[i:end])
                i = end
            elif char == "[" and not self._in_code:
                close = buf.find("]", i + 1)
                inner = buf[i + 1 :] if close == -1 else buf[i + 1 : close]
                if close == -1:
                    if not final and _CITATION_SO_FAR.fullmatch(inner):
                        break  # may still become a citation
                    out.append(char)
                    i += 1
                elif _CITATION.fullmatch(inner):
                    renumbered = self._renumber(inner)
                    if not renumbered and out and out[-1].endswith(" "):
                        out[-1] = out[-1][:-1]  # "text [9]." -> "text." when [9] names nothing
                    out.append(renumbered)
                    i = close + 1
                else:
                    out.append(char)
                    i += 1
            else:
                end = i + 1
                while end < len(buf) and buf[end] not in "`[":
                    end += 1
                out.append(buf[i:end])
                i = end
        self._buffer = buf[i:]
        return "".join(out)

    def _renumber(self, inner: str) -> str:
        parts = []
        for token in re.split(r"[,;]", inner):
            number = int(token.strip())
            if not 1 <= number <= self.passage_count:
                continue
            if number not in self._order:
                self._order.append(number)
            parts.append(f"[{self._order.index(number) + 1}]")
        return "".join(parts)


def renumber(text: str, passage_count: int) -> tuple[str, list[int]]:
    """`text` with its citations renumbered, and the cited passage indices in order."""
    renumberer = CitationRenumberer(passage_count)
    result = renumberer.feed(text) + renumberer.finish()
    return result, renumberer.cited
