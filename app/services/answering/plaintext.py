"""Markdown to plain prose, a chunk at a time, for clients that show an answer as one text node.

The book's widget prints `content` as typed: `**bold**`, backticks and `- ` bullets appear
literally and newlines collapse into spaces. Gemini is asked for plain prose, but models do not
always obey, so its stream passes through `MarkdownToText` on the way out.

Markers can arrive split across chunks ("*" then "*", a "`" at the end of a chunk, a "- " bullet
whose line starts in the next chunk). The filter therefore holds back the few characters it
cannot decide yet (a line's first characters, a run of `*`/`_` whose neighbour is unknown, an
open "[") and emits everything else at once, so a stream stays a stream.

What it does:
- drops emphasis markers (`*`, `**`, `_`, `__`) at word edges, never inside words (snake_case)
  or code; drops backticks (identifiers are written plainly);
- drops line markers (`#` headings, `-`/`*`/`+`/`1.` list items, `>` quotes) and ends such a
  line with a full stop when it has none, so items read as sentences once newlines collapse;
- drops fence lines, horizontal rules and table separator rows; table cells read "a; b";
- turns `[text](url)` into `text`; keeps `[n]` citations as they are.
"""

from __future__ import annotations

import re

_INLINE_SPECIAL = "\n`\\*_[|!"
_ESCAPABLE = set("\\`*_{}[]()#+-.!|>~<")
_CITATION = re.compile(r"[\d,;\s]+")
_HR = re.compile(r"([-*_])[ \t]*(?:\1[ \t]*){2,}")
_HR_SO_FAR = re.compile(r"[-*_][-*_ \t]*")
_TABLE_RULE = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_TABLE_RULE_SO_FAR = re.compile(r"\|[|:\- \t]*")
_HEADING = re.compile(r"#{1,6}[ \t]+")
_BULLET = re.compile(r"[-*+][ \t]+")
_ORDERED = re.compile(r"\d{1,3}[.)][ \t]+")
_ORDERED_SO_FAR = re.compile(r"\d{1,3}[.)]?")
_QUOTE = re.compile(r">[ \t]?")
_TABLE_ROW = re.compile(r"\|[ \t]*")
_SENTENCE_CLOSERS = set(".!?:;,")
_LOOKAHEAD_LIMIT = 400  # an unclosed "[" or "(" longer than this is text, not a link


class MarkdownToText:
    """A streaming Markdown-to-plain-text filter: `feed` chunks, then `finish` once."""

    def __init__(self) -> None:
        self._buffer = ""
        self._line_start = True
        self._kind = "plain"  # plain | item | heading | table: how the current line began
        self._in_fence = False
        self._in_code = False
        self._prev = ""  # the last source character read on this line
        self._last_visible = ""  # the last non-space character emitted on this line
        self._pending_space = ""  # spaces held until something visible follows them

    def feed(self, text: str) -> str:
        """The plain text that can be emitted now (possibly empty); holds back undecided markers."""
        self._buffer += text
        return self._drain(final=False)

    def finish(self) -> str:
        """The rest, once the stream has ended."""
        out = self._drain(final=True)
        return out + self._close_line()

    # --- the machine ------------------------------------------------------------------------
    def _drain(self, *, final: bool) -> str:
        buf = self._buffer
        out: list[str] = []
        i = 0
        while i < len(buf):
            if self._line_start:
                step = self._line_prefix(buf, i, final)
                if step is None:
                    break
                i = step
                continue
            if self._in_fence:  # code lines pass verbatim
                end = buf.find("\n", i)
                end = len(buf) if end == -1 else end + 1
                self._emit(out, buf[i:end])
                if buf[end - 1] == "\n":
                    self._new_line()
                i = end
                continue
            char = buf[i]
            if char == "\n":
                self._pending_space = ""  # trailing spaces say nothing
                self._emit(out, self._close_line() + "\n")
                self._new_line()
                i += 1
            elif char == "`":
                end = _run_end(buf, i)
                if end == len(buf) and not final:
                    break
                self._in_code = not self._in_code
                i = end
            elif char == "\\":
                if i + 1 >= len(buf) and not final:
                    break
                following = buf[i + 1] if i + 1 < len(buf) else ""
                if following in _ESCAPABLE and following:
                    self._emit(out, following)
                    i += 2
                else:
                    self._emit(out, char)
                    i += 1
            elif char in "*_" and not self._in_code:
                end = _run_end(buf, i)
                if end == len(buf) and not final:
                    break
                following = buf[end] if end < len(buf) else ""
                opens = bool(following) and not following.isspace() and not self._prev.isalnum()
                closes = bool(self._prev) and not self._prev.isspace() and not following.isalnum()
                if not (opens or closes):
                    self._emit(out, buf[i:end])
                    self._prev = char
                i = end
            elif char == "[" and not self._in_code:
                step = self._bracket(buf, i, final, out)
                if step is None:
                    break
                i = step
            elif char == "!":
                if i + 1 >= len(buf) and not final:
                    break
                if buf[i + 1 : i + 2] == "[" and not self._in_code:  # an image: keep its alt text
                    step = self._bracket(buf, i + 1, final, out, image=True)
                    if step is None:
                        break
                    i = step
                else:
                    self._emit(out, char)
                    i += 1
            elif char == "|" and self._kind == "table":
                end = i + 1
                while end < len(buf) and buf[end] in " \t":
                    end += 1
                if end == len(buf) and not final:
                    break
                if end < len(buf) and buf[end] != "\n":
                    self._pending_space = ""
                    self._emit(out, "; ")
                i = end
            else:
                end = i + 1
                while end < len(buf) and buf[end] not in _INLINE_SPECIAL:
                    end += 1
                self._emit(out, buf[i:end])
                i = end
        self._buffer = buf[i:]
        return "".join(out)

    def _line_prefix(self, buf: str, i: int, final: bool) -> int | None:
        """Decide how the line at `i` starts; the index after its marker, or None to wait."""
        newline = buf.find("\n", i)
        line = buf[i:] if newline == -1 else buf[i:newline]
        complete = newline != -1 or final
        after_line = len(buf) if newline == -1 else newline + 1
        text = line.lstrip(" \t")
        indent = len(line) - len(text)
        if text.startswith(("```", "~~~")):
            if not complete:
                return None
            self._in_fence = not self._in_fence
            return after_line  # the fence line itself is dropped
        if not complete and text in ("", "`", "``", "~", "~~", "+", ">"):
            return None
        if self._in_fence:
            self._line_start = False
            return i
        if _HR.fullmatch(text) or (_TABLE_RULE.fullmatch(text) and "|" in text and "-" in text):
            if not complete:
                return None
            return after_line
        if not complete and (_HR_SO_FAR.fullmatch(text) or _TABLE_RULE_SO_FAR.fullmatch(text)):
            return None
        if not complete and (re.fullmatch(r"#{1,6}", text) or _ORDERED_SO_FAR.fullmatch(text)):
            return None
        self._line_start = False
        for pattern, kind in (
            (_HEADING, "heading"),
            (_BULLET, "item"),
            (_ORDERED, "item"),
            (_TABLE_ROW, "table"),
            (_QUOTE, "plain"),
        ):
            match = pattern.match(text)
            if match:
                self._kind = kind
                return i + indent + match.end()
        return i + indent

    def _bracket(self, buf: str, i: int, final: bool, out: list[str], image: bool = False) -> int | None:
        """`[n]` stays, `[text](url)` becomes text, anything else is a literal "["."""
        close = buf.find("]", i + 1)
        newline = buf.find("\n", i)
        if close == -1 or (newline != -1 and newline < close):
            if newline == -1 and not final and len(buf) - i < _LOOKAHEAD_LIMIT:
                return None
            self._emit(out, "![" if image else "[")
            return i + 1
        inner = buf[i + 1 : close]
        if _CITATION.fullmatch(inner) and not image:
            self._emit(out, buf[i : close + 1])
            return close + 1
        if close + 1 >= len(buf) and not final:
            return None
        if close + 1 < len(buf) and buf[close + 1] == "(":
            end = buf.find(")", close + 2)
            newline = buf.find("\n", close)
            if end == -1 or (newline != -1 and newline < end):
                if newline == -1 and not final and len(buf) - i < _LOOKAHEAD_LIMIT:
                    return None
            else:
                self._emit(out, _inline_plain(inner))
                return end + 1
        self._emit(out, "![" if image else "[")
        return i + 1

    def _emit(self, out: list[str], text: str) -> None:
        if not text:
            return
        self._prev = text[-1]
        text = self._pending_space + text
        visible = text.rstrip(" \t")
        self._pending_space = text[len(visible) :]
        if visible:
            out.append(visible)
            stripped = visible.rstrip()
            if stripped:
                self._last_visible = stripped[-1]

    def _close_line(self) -> str:
        # A list item, heading or table row ends as a sentence, so collapsed newlines still read.
        if self._kind != "plain" and self._last_visible and self._last_visible not in _SENTENCE_CLOSERS:
            self._last_visible = "."
            return "."
        return ""

    def _new_line(self) -> None:
        self._line_start = True
        self._kind = "plain"
        self._in_code = False
        self._prev = ""
        self._last_visible = ""


def _run_end(buf: str, i: int) -> int:
    end = i
    while end < len(buf) and buf[end] == buf[i]:
        end += 1
    return end


def _inline_plain(text: str) -> str:
    filtered = MarkdownToText()
    filtered._line_start = False
    return filtered.feed(text) + filtered.finish()


def markdown_to_text(text: str) -> str:
    """The whole of `text` as plain prose (the streaming filter, fed at once)."""
    filtered = MarkdownToText()
    return filtered.feed(text) + filtered.finish()
