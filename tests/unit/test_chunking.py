"""Heading-aware chunks: one per section, long sections cut on safe boundaries, nothing lost."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from app.services.ingestion.chunking import Chunk, chunk_book, chunk_page, count_tokens
from app.services.ingestion.docusaurus import (
    Page,
    Section,
    closes_fence,
    parse_fence_opener,
    parse_page,
    read_book,
)

CORPUS_DOCS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "docusaurus-docs" / "docs"


def make_page(*sections: Section, file: str = "guide.md", unlisted: bool = False) -> Page:
    return Page(
        file=file,
        route="/docs/guide",
        url="https://example.com/docs/guide",
        title="Guide",
        description="All about the guide.",
        sidebar_label=None,
        tags=(),
        keywords=(),
        draft=False,
        unlisted=unlisted,
        sections=sections,
    )


def make_section(text: str, anchor: str | None = None, heading: str | None = None, level: int = 2) -> Section:
    path = ("Guide",) if anchor is None else ("Guide", heading or anchor.title())
    return Section(heading_path=path, anchor=anchor, level=1 if anchor is None else level, text=text)


def paragraph(words: int, word: str = "word") -> str:
    return " ".join(f"{word}{index}" for index in range(words)) + "."


def open_fence_at_end(text: str) -> bool:
    fence = None
    for line in text.split("\n"):
        if fence is None and (opener := parse_fence_opener(line)):
            fence = opener[0]
        elif fence is not None and closes_fence(line, fence):
            fence = None
    return fence is not None


def assert_nothing_dropped(section: Section, chunks: list[Chunk], max_tokens: int) -> None:
    """Every line that could fit in a chunk is in one; all non-space characters survive in order."""
    for line in section.text.split("\n"):
        if line.strip() and count_tokens(line) <= max_tokens:
            assert any(line.strip() in chunk.text for chunk in chunks), (section.anchor, line)
    remaining = iter("".join(chunk.text for chunk in chunks))
    assert all(char in remaining for char in "".join(section.text.split())), section.anchor


# --------------------------------------------------------------------------
# Tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("Hello, world!", 4),
        ("config.js", 3),
        ("日本語のテキスト", 8),
        ("  spaced   out  ", 2),
        ("| --- | ----- |", 5),
    ],
)
def test_count_tokens_counts_words_punctuation_runs_and_cjk_characters(text, tokens):
    assert count_tokens(text) == tokens


# --------------------------------------------------------------------------
# One chunk per section


def test_each_section_that_fits_is_one_chunk_with_its_citation():
    page = make_page(make_section("Intro text."), make_section("Run `npm start`.", "scripts", "Scripts"))

    intro, scripts = chunk_page(page)

    assert (intro.url, intro.anchor, intro.heading, intro.key) == (
        "https://example.com/docs/guide",
        None,
        "Guide",
        "guide.md##0",
    )
    assert (scripts.url, scripts.heading_path, scripts.text) == (
        "https://example.com/docs/guide#scripts",
        ("Guide", "Scripts"),
        "Run `npm start`.",
    )
    assert (scripts.key, scripts.heading, scripts.chunk_index, scripts.part) == (
        "guide.md#scripts#0",
        "Guide > Scripts",
        1,
        0,
    )
    assert (scripts.title, scripts.route, scripts.description) == (
        "Guide",
        "/docs/guide",
        "All about the guide.",
    )
    assert scripts.tokens == count_tokens("Run `npm start`.")


def test_a_section_without_body_has_no_chunk_but_stays_in_its_children_heading_path():
    parent = make_section("   \n", "plugins", "Plugins")
    child = Section(("Guide", "Plugins", "Docs"), "docs", 3, "Docs plugin options.")

    chunks = chunk_page(make_page(parent, child))

    assert [chunk.anchor for chunk in chunks] == ["docs"]
    assert chunks[0].heading == "Guide > Plugins > Docs"


def test_setext_sections_are_chunks_cited_at_their_heading(tmp_path):
    (tmp_path / "install.md").write_text(
        "Installation\n============\n\nIntro.\n\nRequirements\n------------\n\nNode.js 18+.\n",
        encoding="utf-8",
    )
    page = parse_page(tmp_path, tmp_path / "install.md", site_url="https://example.com")

    chunks = chunk_page(page)

    assert [(chunk.heading, chunk.url, chunk.text) for chunk in chunks] == [
        ("Installation", "https://example.com/docs/install", "Intro."),
        ("Installation > Requirements", "https://example.com/docs/install#requirements", "Node.js 18+."),
    ]


def test_content_hash_changes_with_what_is_indexed_and_only_then():
    section = make_section("Body.", "a")
    original = chunk_page(make_page(section))[0]

    assert chunk_page(make_page(section))[0].content_hash == original.content_hash
    for changed in [
        make_page(make_section("Body!", "a")),
        make_page(make_section("Body.", "a", heading="Renamed")),
        make_page(make_section("Body.", "b")),
        Page(**{**make_page(section).__dict__, "title": "Other"}),
    ]:
        assert chunk_page(changed)[0].content_hash != original.content_hash


def test_keys_are_stable_and_unique_even_when_a_page_repeats_an_anchor():
    page = make_page(
        make_section("Heading text.", "tags", "Tags"),
        make_section("Option row.", "tags", "tags", level=3),
        make_section("Other.", "other"),
    )
    keys = [chunk.key for chunk in chunk_page(page)]
    edited = make_page(make_section("Heading text, edited.", "tags", "Tags"), *page.sections[1:])

    assert keys == ["guide.md#tags#0", "guide.md#tags~1#0", "guide.md#other#0"]
    assert [chunk.key for chunk in chunk_page(edited)] == keys


def test_chunk_book_skips_unlisted_pages_unless_asked():
    public = make_page(make_section("Public."), file="public.md")
    hidden = make_page(make_section("Hidden."), file="hidden.md", unlisted=True)

    assert [chunk.file for chunk in chunk_book([public, hidden])] == ["public.md"]
    assert [chunk.file for chunk in chunk_book([public, hidden], include_unlisted=True)] == [
        "public.md",
        "hidden.md",
    ]
    assert [chunk.part for chunk in chunk_book([public], max_tokens=2)] == [0]


# --------------------------------------------------------------------------
# Long sections


def test_long_section_is_cut_between_paragraphs_with_overlap():
    paragraphs = [paragraph(60, f"p{index}w") for index in range(6)]  # 61 tokens each
    section = make_section("\n\n".join(paragraphs), "long")

    chunks = chunk_page(make_page(section), max_tokens=150, overlap_tokens=70)

    assert [chunk.part for chunk in chunks] == [0, 1, 2, 3, 4]
    assert chunks[0].text == "\n\n".join(paragraphs[:2])
    assert chunks[1].text == "\n\n".join(paragraphs[1:3])  # starts with the previous piece's last paragraph
    assert all(chunk.tokens <= 150 and chunk.anchor == "long" for chunk in chunks)
    assert [chunk.key for chunk in chunks] == [f"guide.md#long#{part}" for part in range(5)]
    assert_nothing_dropped(section, chunks, 150)


def test_code_block_is_never_cut_when_it_fits():
    code = (
        '```js title="docusaurus.config.js"\n' + "\n".join(f"const v{i} = {i};" for i in range(10)) + "\n```"
    )
    section = make_section(f"{paragraph(40)}\n\n{code}\n\n{paragraph(40)}", "mixed")

    chunks = chunk_page(make_page(section), max_tokens=70, overlap_tokens=0)

    assert count_tokens(code) <= 70 < count_tokens(section.text)
    assert [chunk.text for chunk in chunks if "```" in chunk.text] == [code]
    assert not any(open_fence_at_end(chunk.text) for chunk in chunks)


def test_code_block_too_long_alone_is_cut_on_lines_and_refenced():
    lines = [f"    print('line {index}')" for index in range(60)]
    code = "\n".join(['```python title="long.py"', *lines, "```"])
    section = make_section(f"Before.\n\n{code}\n\nAfter.", "code")

    chunks = chunk_page(make_page(section), max_tokens=60, overlap_tokens=10)
    code_chunks = [chunk.text for chunk in chunks if "print" in chunk.text]

    assert len(code_chunks) > 2
    for text in code_chunks:  # each piece is a whole fenced block (maybe beside "Before."/"After.")
        assert text.count('```python title="long.py"\n') == 1 and not open_fence_at_end(text)
    assert [line for text in code_chunks for line in text.split("\n") if "print" in line] == lines
    assert all(chunk.tokens <= 60 for chunk in chunks)
    assert_nothing_dropped(section, chunks, 60)


def test_table_too_long_is_cut_between_rows_and_repeats_its_header():
    rows = [f"| `option{index}` | `string` | Option number {index}. |" for index in range(40)]
    table = "\n".join(["| Name | Type | Description |", "| --- | --- | --- |", *rows])
    section = make_section(table, "options")

    chunks = chunk_page(make_page(section), max_tokens=100)

    assert len(chunks) > 1
    assert all(
        chunk.text.startswith("| Name | Type | Description |\n| --- | --- | --- |\n|") for chunk in chunks
    )
    assert [line for chunk in chunks for line in chunk.text.split("\n")[2:]] == rows


@pytest.mark.parametrize(
    "text",
    [
        " ".join(f"Sentence number {index} is here." for index in range(80)),  # one line, many sentences
        " ".join(f"word{index}" for index in range(500)),  # no sentence ends
        "x" + ".x" * 400,  # no spaces at all: cut between tokens
    ],
)
def test_giant_paragraph_is_cut_into_pieces_that_fit(text):
    section = make_section(text, "giant")

    chunks = chunk_page(make_page(section), max_tokens=50, overlap_tokens=10)

    assert len(chunks) > 5
    assert all(0 < chunk.tokens <= 50 for chunk in chunks)
    assert_nothing_dropped(section, chunks, 50)


def test_min_tokens_folds_a_tiny_section_into_the_previous_chunk():
    page = make_page(
        make_section("A first section with a few words.", "first"),
        make_section("Tiny.", "tiny", "Tiny"),
        make_section(paragraph(20), "big"),
    )

    chunks = chunk_page(page, min_tokens=4)

    assert [chunk.anchor for chunk in chunks] == ["first", "big"]
    assert chunks[0].text == "A first section with a few words.\n\n## Tiny\n\nTiny."
    assert chunks[0].tokens == count_tokens(chunks[0].text)


def test_max_tokens_must_be_positive():
    with pytest.raises(ValueError):
        chunk_page(make_page(make_section("x")), max_tokens=0)


# --------------------------------------------------------------------------
# The real corpus


@pytest.fixture(scope="module")
def corpus_pages() -> list[Page]:
    if not CORPUS_DOCS.is_dir():
        pytest.skip(f"no Docusaurus docs corpus at {CORPUS_DOCS}: run `python scripts/fetch_corpus.py`")
    return read_book(CORPUS_DOCS, site_url="https://docusaurus.io", route_base_path="docs")


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(350, 40), (80, 20)])
def test_corpus_chunks_fit_keep_every_text_and_have_unique_keys(corpus_pages, max_tokens, overlap_tokens):
    chunks = chunk_book(corpus_pages, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    by_page: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        by_page[chunk.file].append(chunk)

    assert len({chunk.key for chunk in chunks}) == len(chunks)
    assert all(chunk.tokens <= max_tokens for chunk in chunks)
    assert not [chunk.key for chunk in chunks if open_fence_at_end(chunk.text)]
    for page in corpus_pages:
        page_chunks = by_page[page.file]
        assert [chunk.chunk_index for chunk in page_chunks] == list(range(len(page_chunks)))
        seen: Counter[str | None] = Counter()
        for section in page.sections:
            if not section.text.strip():
                continue
            occurrence = seen[section.anchor]
            seen[section.anchor] += 1
            own = [c for c in page_chunks if (c.anchor, c.section_occurrence) == (section.anchor, occurrence)]
            assert_nothing_dropped(section, own, max_tokens)


def test_corpus_config_page_has_a_scripts_chunk(corpus_pages):
    chunks = chunk_book(corpus_pages)
    scripts = [
        chunk
        for chunk in chunks
        if chunk.file == "api/docusaurus.config.js.mdx" and chunk.anchor == "scripts"
    ]

    assert scripts and scripts[0].url == "https://docusaurus.io/docs/api/docusaurus-config#scripts"
    assert scripts[0].key == "api/docusaurus.config.js.mdx#scripts#0"
