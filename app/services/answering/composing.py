"""What the offline answerer composes: the sections it weighs, the quotes it takes from them, and
how a quote reads in each format (text: one plain paragraph, code inline; Markdown: code fenced)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from app.services.answering.units import Unit
from app.services.retrieval.retriever import Passage

CODE_CHARS = 320  # a code excerpt inline, in text format
MAX_UNITS = 6  # units quoted from one section at most
NAME_HEADING = re.compile(r"^[\w.@/:$-]+(?:\(\))?$")
# Text that would read as Markdown in the widget's text node: such a code excerpt is left out there.
NOT_PLAIN = re.compile(
    r"`|\*\*|__|\]\(|^\s*(?:#{1,6}|[-*+]|\d+[.)])\s"  # code spans, bold, links, headings, bullets
    r"|(?<![\w*])\*\S[^*]*\S\*(?![\w*])"  # "/* a */ ... /*": reads as emphasis
    r"|(?<![\w/])[A-Za-z][\w-]*:\s+[A-Za-z][\w-]*:(?:\s|$)"  # YAML "with: node-version:" on one line
)
CITATIONS = re.compile(r"\s*\[\d+\]")
INNER_FENCE = re.compile(r"^\s*(?:```|~~~)")
_PATH = re.compile(r"[\w@~.-]*[./][\w@~./-]*")
_COMMENT = re.compile(r"(?:^|\s)(?://|#|/\*|<!--|\{/\*).*$")


@dataclass
class Section:
    """A passage as the answerer weighs it."""

    index: int
    passage: Passage
    units: list[Unit]
    terms: list[Counter[str]]  # each unit's terms
    heading: str  # the section's own heading (the last part of its path)
    heading_terms: set[str]
    prior: float
    title_terms: frozenset[str] = frozenset()  # the page's title: what each of its sections is about

    @property
    def plain_heading(self) -> str:
        """The heading without its decoration ("📦 plugin-pwa": the emoji)."""
        return re.sub(r"^[^\w`@./$-]+", "", self.heading).strip()

    @property
    def name(self) -> str | None:
        """The option, field or command the section is about, when its heading is one."""
        heading = self.plain_heading
        if NAME_HEADING.match(heading) and not (heading[:1].isupper() and heading[1:].islower()):
            return heading
        return None


@dataclass(frozen=True)
class Quote:
    """What one section contributes: its units in book order, and the excerpt of each code unit."""

    section: Section
    units: list[Unit]
    excerpts: dict[int, list[str]]  # unit position -> the code lines quoted

    def unit_length(self, unit: Unit, markdown: bool) -> int:
        if unit.kind != "code":
            return len(unit.text) + 5
        lines = self.excerpts.get(unit.position, [])
        return (sum(len(line) + 1 for line in lines) if markdown else len(one_line(lines))) + 20

    def length(self, markdown: bool) -> int:
        return sum(self.unit_length(u, markdown) for u in self.units)

    def within(self, budget: int, markdown: bool, relevance: list[float]) -> Quote | None:
        """This quote with its least relevant prose dropped until it fits (None: it cannot)."""
        units = list(self.units)
        while len(units) > 1 and (
            sum(self.unit_length(u, markdown) for u in units) > budget or len(units) > MAX_UNITS
        ):
            prose = [u for u in units if u.kind != "code"]
            units.remove(min(prose or units, key=lambda u: (relevance[u.position], -u.position)))
        if not units or sum(self.unit_length(u, markdown) for u in units) > budget:
            return None
        return Quote(self.section, units, self.excerpts)


def render(plan: list[Quote], markdown: bool) -> str:
    paragraphs: list[str] = []
    current: list[str] = []
    for quote in plan:
        section, units = quote.section, quote.units
        n = section.index + 1
        name = section.name
        for k, unit in enumerate(units):
            if unit.kind == "code":
                lead = _code_lead(unit, section, units[k - 1] if k else None, markdown)
                lines = quote.excerpts.get(unit.position, [])
                if markdown:
                    current.append(f"{lead} [{n}]:")
                    paragraphs.append(" ".join(current))
                    current = []
                    paragraphs.append(_fenced(unit, lines))
                else:
                    current.append(f"{lead}: {one_line(lines)} [{n}].")
                continue
            text = unit.markdown if markdown else unit.text
            if unit.kind == "field" and not text.endswith("."):
                text += "."
            if k == 0 and name and unit.kind != "row" and not text.replace("`", "").startswith(name):
                text = f"{'`' + name + '`' if markdown else name}: {text}"
            current.append(text[:-1] + f" [{n}]." if text.endswith(".") else text + f" [{n}]")
        if markdown and current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return ("\n\n" if markdown else " ").join(paragraphs)


def _code_lead(unit: Unit, section: Section, before: Unit | None, markdown: bool) -> str:
    intro = unit.intro if markdown else unit.intro.replace("`", "")
    # A block's title is where it goes when it is a file ("docusaurus.config.js"), else a label.
    path = unit.title if _PATH.fullmatch(unit.title) else ""
    where = (f"`{path}`" if markdown else path) if path else ""
    if len(intro.split()) >= 2:  # "Bash:" or "JSON:" labels a tab; it introduces nothing
        lead = intro[:1].upper() + intro[1:]
        if where and path not in intro:
            lead += f", in {where}"  # where the snippet goes is part of the how-to
        return lead
    if before is not None and before.position == unit.context:
        return f"For example, in {where}" if where else "For example"
    if where:
        return f"In {where}"
    return unit.title or f"From “{section.plain_heading}”"


def one_line(lines: list[str], *, cut: bool = True) -> str:
    """A code excerpt as one line of plain text (the widget collapses newlines anyway); the
    fences of a Markdown example's inner code blocks are left out, they would read as Markdown."""
    text = " ".join(_plain_comment(line.strip()) for line in lines if not INNER_FENCE.match(line))
    if cut and len(text) > CODE_CHARS:
        text = text[: CODE_CHARS - 1].rsplit(" ", 1)[0] + " …"
    return text


def _plain_comment(line: str) -> str:
    """A code line with the backticks of its comment dropped ("// Equivalent to `docsUrl`."):
    in a comment they are the book's Markdown, and in the widget's text they would read as such."""
    found = _COMMENT.search(line)
    return line if not found else line[: found.start()] + found.group(0).replace("`", "")


def _fenced(unit: Unit, lines: list[str]) -> str:
    fence = "````" if any(line.lstrip().startswith("```") for line in lines) else "```"
    lang = unit.lang if unit.lang and unit.lang != "npm2yarn" else ""
    return f"{fence}{lang}\n" + "\n".join(lines) + f"\n{fence}"


def dedent(lines: list[str]) -> list[str]:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip() and line != "…"]
    cut = min(indents, default=0)
    return [line[cut:] if line != "…" else line for line in lines]


def normalised(text: str) -> str:
    return " ".join(CITATIONS.sub("", text).replace("`", "").casefold().split())
