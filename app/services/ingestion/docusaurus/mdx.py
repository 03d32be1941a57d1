"""MDX syntax out, text kept.

Removes only MDX syntax: ESM ``import``/``export`` blocks, comments, JSX tags (keeping their
text, and a ``TabItem``'s label). Code fences are kept verbatim; ```` ```mdx-code-block ````
fences are unwrapped, as Docusaurus does. Any ``{expression}`` that is not a comment is kept
as written. Where a JSX tag means structure (an ``<APITable>``, an inlined partial), a marker
line is left for the section builder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.services.ingestion.docusaurus.fences import CodeBlock, fence_end, parse_fence_opener

# --------------------------------------------------------------------------
# Code blocks and ESM (import/export blocks)


def unwrap_mdx_code_blocks(lines: list[str]) -> list[str]:
    """The lines with every ```` ```mdx-code-block ```` fence replaced by its content.

    Docusaurus renders these fences as MDX (it is how the docs show JSX in
    editors that would mangle it): their content is page content.
    """
    unwrapped: list[str] = []
    index = 0
    while index < len(lines):
        opener = parse_fence_opener(lines[index])
        if opener is None:
            unwrapped.append(lines[index])
            index += 1
            continue
        end = fence_end(lines, index, opener[0])
        if opener[1].split()[:1] == ["mdx-code-block"]:
            unwrapped += ["", *unwrap_mdx_code_blocks(lines[index + 1 : end]), ""]
        else:
            unwrapped += lines[index : end + 1]
        index = end + 1
    return unwrapped


_ESM_START = re.compile(
    r"^(?:import\s+(?:['\"{*]|[\w$]+\s*(?:,|from\b))|export\s+(?:const|let|var|function|async|class|default|\{|\*))"
)
_STRING_LITERAL = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|`(?:[^`\\]|\\.)*`")
_ATX_HEADING = re.compile(r"^\s*(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
# A balanced line ending like this completes a statement (`import x from 'y'`, `};`).
_STATEMENT_ENDINGS = (";", "'", '"', "}", ")", "]")
_PARTIAL_IMPORT = re.compile(r"^import\s+([\w$]+)\s+from\s+['\"](\.{1,2}/[^'\"]+\.mdx?)['\"]", re.MULTILINE)


def _esm_end(lines: list[str], start: int) -> int:
    """Index just after the ESM statement block starting at ``start``.

    Like MDX, a block runs to a blank line once its brackets are balanced (a
    one-line statement ends at its own line); a markdown heading stops it in
    any case, so that an unbalanced bracket can never swallow the page.
    """
    depth = 0
    index = start
    while index < len(lines):
        code = _STRING_LITERAL.sub('""', lines[index]).rstrip()
        depth += sum(code.count(opening) for opening in "([{") - sum(code.count(closing) for closing in ")]}")
        index += 1
        if index == len(lines) or _ATX_HEADING.match(lines[index]):
            return index
        following = lines[index]
        statement_done = code.endswith(_STATEMENT_ENDINGS)
        if depth <= 0 and (statement_done or not following.strip() or _ESM_START.match(following)):
            return index
    return index


def split_code_and_esm(
    lines: list[str], source_dir: Path
) -> tuple[list[CodeBlock | list[str]], dict[str, Path]]:
    """Split lines into code fences and markdown runs, dropping ESM blocks.

    Returns the blocks and the components imported from markdown partials.
    """
    blocks: list[CodeBlock | list[str]] = []
    partial_components: dict[str, Path] = {}
    markdown_run: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        opener = parse_fence_opener(line)
        if opener is not None:
            end = fence_end(lines, index, opener[0])
            blocks += [markdown_run, CodeBlock(tuple(lines[index : end + 1]))]
            markdown_run = []
            index = end + 1
        elif _ESM_START.match(line):
            end = _esm_end(lines, index)
            for name, target in _PARTIAL_IMPORT.findall("\n".join(lines[index:end])):
                partial_components[name] = source_dir / target
            markdown_run.append("")
            index = end
        else:
            markdown_run.append(line)
            index += 1
    blocks.append(markdown_run)
    return [block for block in blocks if block], partial_components


# --------------------------------------------------------------------------
# Inline MDX cleaning: comments, expressions and JSX tags

# Markers the inline cleaner leaves on their own line for the section builder.
# They start with NUL, which is removed from the input first, so no doc text
# can look like one.
MARK = "\x00"
API_TABLE_OPEN = f"{MARK}table-open{MARK}"
API_TABLE_CLOSE = f"{MARK}table-close{MARK}"
PARTIAL = f"{MARK}partial{MARK}"

_SPECIAL_CHARS = re.compile(r"[\\`<{]")
_BACKTICKS = re.compile(r"`+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_TAG_NAME = re.compile(r"[A-Za-z][\w.:-]*")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:$][\w.:$-]*")
_WHITESPACE = re.compile(r"\s*")


_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def _end_of(pattern: re.Pattern[str], text: str, start: int) -> int:
    """Where `pattern`, matched at `start`, ends (`start` itself where it does not match)."""
    found = pattern.match(text, start)
    return found.end() if found else start


@dataclass
class _JsxTag:
    name: str
    attributes: dict[str, str | None]
    closing: bool
    self_closing: bool
    end: int


def _code_span_end(text: str, start: int) -> int | None:
    """End of the inline code span opening at ``start``; None if the backticks are literal."""
    run = _end_of(_BACKTICKS, text, start) - start
    closer = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(text, start + run)
    if closer is None or _BLANK_LINE.search(text, start, closer.start()):
        return None
    return closer.end()


def _skip_string(text: str, start: int) -> int | None:
    """End of the JS string/template literal opening at ``start`` (None if unterminated)."""
    quote_char = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == quote_char:
            return index + 1
        if char == "\n" and quote_char != "`":
            return None
        index += 1
    return None


def _expression_end(text: str, start: int) -> int | None:
    """End of the balanced ``{...}`` expression opening at ``start`` (None if unbalanced)."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char in "'\"`":
            end = _skip_string(text, index)
            index = end if end is not None else index + 1
            continue
        if text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end == -1:
                return None
            index = end + 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None


def _parse_jsx_tag(text: str, start: int) -> _JsxTag | None:
    """The JSX tag (``<X a="1" b={2}>``, ``</X>``, ``<X />``, ``<>``) at ``start``, or None."""
    index = start + 1
    closing = text.startswith("/", index)
    index += closing
    name_match = _TAG_NAME.match(text, index)
    name = name_match.group() if name_match else ""
    index = name_match.end() if name_match else index
    if not name and not text.startswith(">", index):
        return None
    attributes: dict[str, str | None] = {}
    while index < len(text):
        index = _end_of(_WHITESPACE, text, index)
        if text.startswith("/>", index):
            return _JsxTag(name, attributes, closing, True, index + 2)
        if text.startswith(">", index):
            return _JsxTag(name, attributes, closing, False, index + 1)
        if closing:
            return None
        if text.startswith("{", index):  # {...spread}
            end = _expression_end(text, index)
            if end is None:
                return None
            index = end
            continue
        attribute = _ATTRIBUTE_NAME.match(text, index)
        if attribute is None:
            return None
        index = _end_of(_WHITESPACE, text, attribute.end())
        value: str | None = None
        if text.startswith("=", index):
            index = _end_of(_WHITESPACE, text, index + 1)
            if index < len(text) and text[index] in "'\"":
                end = text.find(text[index], index + 1)
                if end == -1:
                    return None
                value, index = text[index + 1 : end], end + 1
            elif text.startswith("{", index):
                end = _expression_end(text, index)
                if end is None:
                    return None
                index = end  # an expression value is not simple text: no value kept
            else:
                return None
        attributes[attribute.group()] = value
    return None


def _render_expression(raw: str) -> str:
    """What an MDX ``{...}`` expression leaves in the text."""
    inner = _BLOCK_COMMENT.sub("", raw[1:-1]).strip()
    if not inner:
        return ""  # {/* comment */} or {}
    if len(inner) >= 2 and inner[0] in "'\"`" and inner[-1] == inner[0] and not inner[1:-1].strip():
        return " "  # the JSX spacing idiom {' '}
    # Anything else (real JS, but also {#custom-id} and {.class} attributes
    # read later) is kept as written: never drop text we do not understand.
    return raw


class MdxCleaner:
    """Removes MDX syntax from markdown text, keeping the text content."""

    def __init__(self, partial_components: dict[str, Path]):
        self.partial_components = partial_components
        self.partials_used: list[Path] = []

    def clean(self, text: str) -> str:
        """The text with comments, JSX tags and comment expressions removed."""
        pieces: list[str] = []
        index = 0
        while True:
            special = _SPECIAL_CHARS.search(text, index)
            if special is None:
                pieces.append(text[index:])
                return "".join(pieces)
            start = special.start()
            pieces.append(text[index:start])
            replacement, index = self._at_special(text, start)
            pieces.append(replacement)

    def _at_special(self, text: str, start: int) -> tuple[str, int]:
        char = text[start]
        if char == "\\":
            return text[start : start + 2], start + 2  # escapes stay markdown
        if char == "`":
            end = _code_span_end(text, start) or _end_of(_BACKTICKS, text, start)
            return text[start:end], end  # code is never cleaned
        if char == "{":
            closed = _expression_end(text, start)
            return (_render_expression(text[start:closed]), closed) if closed else (char, start + 1)
        if text.startswith("<!--", start):
            end = text.find("-->", start + 4)
            return ("", end + 3) if end != -1 else (char, start + 1)
        tag = _parse_jsx_tag(text, start)
        return (self._render_tag(tag), tag.end) if tag else (char, start + 1)

    def _render_tag(self, tag: _JsxTag) -> str:
        name, attributes = tag.name, tag.attributes
        if name == "APITable":
            if tag.closing:
                return f"\n{API_TABLE_CLOSE}\n"
            return f"\n{API_TABLE_OPEN}{attributes.get('name') or ''}\n"
        if tag.closing:
            return ""
        if name == "TabItem":
            label = attributes.get("label") or attributes.get("value")
            return f"{label}: " if label else ""
        if name == "Admonition":
            kind = (attributes.get("type") or "note").capitalize()
            title = attributes.get("title")
            return f"\n{kind}: {title}\n" if title else f"\n{kind}:\n"
        if name in self.partial_components and tag.self_closing:
            self.partials_used.append(self.partial_components[name])
            return f"\n{PARTIAL}{len(self.partials_used) - 1}\n"
        if name == "br":
            return " "
        return ""
