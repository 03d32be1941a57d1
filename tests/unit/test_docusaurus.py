"""Reading a Docusaurus docs folder: pages, routes, front matter, anchors and cleaned text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.services.ingestion.docusaurus import (
    Page,
    Slugger,
    closes_fence,
    discover_pages,
    parse_fence_opener,
    parse_page,
    read_book,
    slugify_heading,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPUS_DOCS = SHARED / "corpora" / "docusaurus-docs" / "docs"
EVAL_QUESTIONS = SHARED / "eval" / "docusaurus-questions.dev.jsonl"
NO_CORPUS = f"no Docusaurus docs corpus at {CORPUS_DOCS}: run `python scripts/fetch_corpus.py`"
SITE_URL = "https://docusaurus.io"


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def page_from(tmp_path: Path, text: str, relative: str = "page.mdx", **options) -> Page:
    return parse_page(tmp_path, write(tmp_path, relative, text), **options)


def section(page: Page, anchor: str | None):
    matches = [item for item in page.sections if item.anchor == anchor]
    assert matches, f"no section #{anchor} in {[item.anchor for item in page.sections]}"
    return matches[0]


def prose_only(text: str) -> str:
    """The text with fenced code blocks removed (MDX syntax may legitimately appear in code)."""
    kept, fence = [], None
    for line in text.split("\n"):
        if fence is None and (opener := parse_fence_opener(line)):
            fence = opener[0]
        elif fence is not None and closes_fence(line, fence):
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


# --------------------------------------------------------------------------
# Which files are pages


def test_discover_pages_keeps_markdown_and_leaves_out_partials_hidden_and_node_modules(tmp_path):
    for relative in [
        "b.mdx",
        "a.md",
        "sub/d.md",
        "notes.txt",
        "_partial.mdx",
        "sub/_hidden-partial.md",
        "_drafts/x.md",
        ".git/y.md",
        "node_modules/pkg/README.md",
    ]:
        write(tmp_path, relative, "# Page\n")

    found = [path.relative_to(tmp_path).as_posix() for path in discover_pages(tmp_path)]

    assert found == ["a.md", "b.mdx", "sub/d.md"]


# --------------------------------------------------------------------------
# Routes


@pytest.mark.parametrize(
    ("relative", "front_matter", "route"),
    [
        ("intro.md", "", "/docs/intro"),
        ("guides/01-getting-started/02-install.md", "", "/docs/guides/getting-started/install"),
        ("guides/1.intro.md", "", "/docs/guides/intro"),
        ("guides/01_intro.md", "", "/docs/guides/intro"),
        ("2021-03-05-release.md", "", "/docs/2021-03-05-release"),  # date-like: no prefix
        ("1.2-upgrade.md", "", "/docs/1.2-upgrade"),  # version-like: no prefix
        ("api/plugin-methods/README.mdx", "", "/docs/api/plugin-methods"),
        ("guides/index.md", "", "/docs/guides"),
        ("guides/Readme.md", "", "/docs/guides"),
        ("tutorial/tutorial.md", "", "/docs/tutorial"),
        ("02-tutorial/02-tutorial.md", "", "/docs/tutorial"),
        ("index.md", "", "/docs"),
        ("api/docusaurus.config.js.mdx", "", "/docs/api/docusaurus.config.js"),
        ("guides/docs-create.md", "id: create-doc", "/docs/guides/create-doc"),
        ("01-guides/02-page.md", "id: 02-kept", "/docs/guides/02-kept"),
        ("guides/index.md", "id: other", "/docs/guides"),
        ("guides/page.md", "slug: /custom/path", "/docs/custom/path"),
        ("guides/page.md", "slug: /", "/docs"),
        ("a/b/page.md", "slug: relative", "/docs/a/b/relative"),
        ("a/b/page.md", "slug: ../up", "/docs/a/up"),
        ("a/b/page.md", "slug: /trailing/", "/docs/trailing"),
        ("api/docusaurus.config.js.mdx", "slug: /api/docusaurus-config", "/docs/api/docusaurus-config"),
    ],
)
def test_route_follows_docusaurus_rules(tmp_path, relative, front_matter, route):
    page = page_from(tmp_path, f"---\n{front_matter}\n---\n\nText.\n", relative)

    assert page.route == route
    assert page.file == relative


@pytest.mark.parametrize("route_base_path", ["/", ""])
def test_root_route_base_path_serves_docs_at_the_site_root(tmp_path, route_base_path):
    write(tmp_path, "index.md", "# Home\n")
    write(tmp_path, "guides/setup.md", "# Setup\n")

    routes = [page.route for page in read_book(tmp_path, route_base_path=route_base_path)]

    assert routes == ["/guides/setup", "/"]


def test_url_is_site_url_plus_route_and_is_a_valid_link(tmp_path):
    page = page_from(
        tmp_path, "# Client API\n", "03-API/0 --- Client API.md", site_url="https://example.com/"
    )

    assert page.route == "/docs/API/Client API"
    assert page.url == "https://example.com/docs/API/Client%20API"
    assert page_from(tmp_path, "# X\n", "x.md").url == "/docs/x"


def test_invalid_front_matter_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"broken\.md: invalid front matter"):
        page_from(tmp_path, "---\ntitle: [unclosed\n---\n", "broken.md")


def test_front_matter_id_with_a_slash_is_rejected_as_docusaurus_does(tmp_path):
    with pytest.raises(ValueError, match="slash"):
        page_from(tmp_path, "---\nid: a/b\n---\n")


# --------------------------------------------------------------------------
# Front matter and title


def test_front_matter_fields_are_read(tmp_path):
    page = page_from(
        tmp_path,
        """---
title: Configuration
description: How to configure
sidebar_label: Config
tags: [setup, {label: Advanced, permalink: /adv}]
keywords:
  - config
  - docusaurus.config.js
draft: false
unlisted: true
---

Body.
""",
    )

    assert page.title == "Configuration"
    assert page.description == "How to configure"
    assert page.sidebar_label == "Config"
    assert page.tags == ("setup", "Advanced")
    assert page.keywords == ("config", "docusaurus.config.js")
    assert (page.draft, page.unlisted) == (False, True)


def test_missing_front_matter_gives_empty_metadata(tmp_path):
    page = page_from(tmp_path, "Just text.\n", "plain.md")

    assert (page.description, page.sidebar_label, page.tags, page.keywords) == (None, None, (), ())
    assert (page.draft, page.unlisted) == (False, False)


def test_title_comes_from_front_matter_then_first_h1_then_id(tmp_path):
    from_h1 = page_from(tmp_path, "# The `docusaurus.config.js` **file**\n\nText.\n", "a.md")
    from_id = page_from(tmp_path, "---\nid: my-id\n---\n\nNo heading.\n", "b.md")
    from_file = page_from(tmp_path, "No heading.\n", "03-setup.md")
    h2_first = page_from(tmp_path, "## Not a title\n\n# Late H1\n", "c.md")

    assert from_h1.title == "The docusaurus.config.js file"
    assert from_id.title == "my-id"
    assert from_file.title == "setup"
    assert h2_first.title == "c"


def test_read_book_skips_drafts_unless_asked_and_keeps_unlisted_pages(tmp_path):
    write(tmp_path, "draft.md", "---\ndraft: true\n---\n# Draft\n")
    write(tmp_path, "hidden.md", "---\nunlisted: true\n---\n# Hidden\n")
    write(tmp_path, "public.md", "# Public\n")

    default = {page.file: page for page in read_book(tmp_path)}
    with_drafts = [page.file for page in read_book(tmp_path, include_drafts=True)]

    assert sorted(default) == ["hidden.md", "public.md"]
    assert default["hidden.md"].unlisted
    assert with_drafts == ["draft.md", "hidden.md", "public.md"]


# --------------------------------------------------------------------------
# Heading ids


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Hello World", "hello-world"),
        ("`scripts`", "scripts"),
        ("Using `docusaurus.config.js` [here](https://example.com)", "using-docusaurusconfigjs-here"),
        ("**Bold** and _emphasis_", "bold-and-emphasis"),
        ("heading with a - dash", "heading-with-a---dash"),
        ("heading with an _ underscore", "heading-with-an-_-underscore"),
        (
            "exchange.bind_headers(exchange, routing [, bindCallback])",
            "exchangebind_headersexchange-routing--bindcallback",
        ),
        ("I ♥ unicode", "i--unicode"),
        ("😄 - an emoji", "---an-emoji"),
        ("apostrophe\u2019s should be trimmed", "apostrophes-should-be-trimmed"),
        ("Привет non-latin 你好", "привет-non-latin-你好"),
        ("Ⓐ circled", "ⓐ-circled"),
        ("What's next?", "whats-next"),
    ],
)
def test_slugify_heading_follows_github_slugger(text, slug):
    assert slugify_heading(text) == slug


def test_slugger_numbers_duplicates_like_github_slugger():
    slugger = Slugger()

    slugs = [slugger.slug(text) for text in ["echo", "echo", "echo 1", "echo-1", "echo", "Echo"]]

    assert slugs == ["echo", "echo-1", "echo-1-1", "echo-1-2", "echo-2", "echo-3"]


def test_sections_follow_headings_with_docusaurus_anchors(tmp_path):
    page = page_from(
        tmp_path,
        """---
title: Configuration
---

Intro text.

## Scripts

Body of scripts.

### `scripts` {#custom-scripts}

Custom id body.

## Scripts

Second body.

```md
## Not a heading
```

#### Deep **bold** [link](x)

Deep body.

## Closing hashes ##

Done.
""",
    )

    assert [(item.anchor, item.level, item.heading_path) for item in page.sections] == [
        (None, 1, ("Configuration",)),
        ("scripts", 2, ("Configuration", "Scripts")),
        ("custom-scripts", 3, ("Configuration", "Scripts", "scripts")),
        ("scripts-1", 2, ("Configuration", "Scripts")),
        ("deep-bold-link", 4, ("Configuration", "Scripts", "Deep bold link")),
        ("closing-hashes", 2, ("Configuration", "Closing hashes")),
    ]
    assert section(page, None).text == "Intro text."
    assert section(page, "custom-scripts").text == "Custom id body."
    assert section(page, "scripts-1").text == "Second body.\n\n```md\n## Not a heading\n```"


def test_setext_headings_are_sections_like_atx_headings(tmp_path):
    # `Title` over `===` is an H1 and over `---` an H2 (CommonMark): the page's title, then
    # sections with the ids the site gives them, mixed freely with ATX headings.
    page = page_from(
        tmp_path,
        """Installation
============

Intro text.

Requirements
------------

Node.js 18.

### Checking **versions**

Run `node -v`.

Explicit id {#the-cli}
----------------------

CLI body.

## Requirements

Second body.
""",
        "install.md",
    )

    assert page.title == "Installation"
    assert [(item.anchor, item.level, item.heading_path) for item in page.sections] == [
        (None, 1, ("Installation",)),
        ("requirements", 2, ("Installation", "Requirements")),
        ("checking-versions", 3, ("Installation", "Requirements", "Checking versions")),
        ("the-cli", 2, ("Installation", "Explicit id")),
        ("requirements-1", 2, ("Installation", "Requirements")),
    ]
    assert section(page, None).text == "Intro text."
    assert section(page, "requirements").text == "Node.js 18."
    assert not any("===" in item.text or "---" in item.text for item in page.sections)


def test_a_dash_line_is_a_setext_underline_only_under_paragraph_text(tmp_path):
    page = page_from(
        tmp_path,
        """# Guide

Before a break.

---

- a list item
---

Two lines
of heading
---

Body.

:::note
Noted
:::
---
""",
        "guide.md",
    )

    assert [(item.anchor, item.heading_path) for item in page.sections] == [
        (None, ("Guide",)),
        # remark keeps the line ending in the heading's text, and github-slugger drops it.
        ("two-linesof-heading", ("Guide", "Two lines of heading")),
    ]
    # A blank line, a list item or an admonition fence above `---` makes it a thematic break.
    assert section(page, None).text == "Before a break.\n\n---\n\n- a list item\n---"
    assert section(page, "two-linesof-heading").text == "Body.\n\nNote:\nNoted\n\n---"


def test_a_setext_h1_below_a_thematic_break_is_not_the_title(tmp_path):
    page = page_from(tmp_path, "Intro.\n\n***\n\nLater\n=====\n\nText.\n", "later.md")

    assert page.title == "later"
    assert [item.anchor for item in page.sections] == [None, "later"]


def test_the_h1_is_the_title_and_still_takes_its_slug(tmp_path):
    # Docusaurus slugs every heading of the page, the H1 included: a later
    # "## Tabs" under "# Tabs" is #tabs-1. Explicit ids do not count.
    page = page_from(tmp_path, "# Tabs\n\nIntro.\n\n## Tabs\n\n## Other {#tabs-2}\n\n## Other\n", "tabs.md")

    assert page.title == "Tabs"
    assert [item.anchor for item in page.sections] == [None, "tabs-1", "tabs-2", "other"]
    assert section(page, None).text == "Intro."


def test_heading_without_body_is_kept_as_an_empty_section(tmp_path):
    page = page_from(tmp_path, "# T\n\n## Parent\n\n### Child\n\nChild text.\n", "t.md")

    assert section(page, "parent").text == ""
    assert section(page, "child").heading_path == ("T", "Parent", "Child")


# --------------------------------------------------------------------------
# MDX cleaning


MDX_PAGE = """---
title: Cleaning
---

import Tabs from '@theme/Tabs';
import {useLocation} from '@docusaurus/router';
export const Highlight = ({children, color}) => (
  <span style={{backgroundColor: color}}>{children}</span>
);

{/* an MDX comment */}
<!-- an HTML comment -->

We import these files into the project, and export them later.

<Tabs groupId="os">
  <TabItem value="win" label="Windows">Use Ctrl + C.</TabItem>
  <TabItem value="mac">Use Command + C.</TabItem>
</Tabs>

<details>
<summary>Toggle me!</summary>

Hidden text.

</details>

<DocCardList />

:::tip[Use **tabs**]

Tip body.

:::

:::note Legacy title

Note body.

:::

::::warning

Nested warning.

:::

:::

Inline `<Tabs>` and `{/* kept */}` and `<!-- kept -->` stay,
so does <Highlight color="#25c2a0">highlighted text</Highlight>{' '}here.

Unknown {props.name} expression and a < b stay too.

```js title="x.js"
import y from 'y';
<Tabs>
:::note
```

~~~python
# not a heading
~~~
"""


def test_mdx_syntax_is_removed_and_its_text_content_kept(tmp_path):
    text = section(page_from(tmp_path, MDX_PAGE), None).text
    prose = prose_only(text)

    for removed in [
        "import Tabs",
        "useLocation",
        "export const",
        "an MDX comment",
        "an HTML comment",
        "<details",
        "<summary",
        "DocCardList",
        "<TabItem",
        "</Tabs>",
        ":::",
    ]:
        assert removed not in prose, removed
    for kept in [
        "We import these files into the project, and export them later.",
        "Windows: Use Ctrl + C.",
        "mac: Use Command + C.",
        "Toggle me!",
        "Hidden text.",
        "Tip: Use **tabs**",
        "Tip body.",
        "Note: Legacy title",
        "Note body.",
        "Warning:",
        "Nested warning.",
        "Inline `<Tabs>` and `{/* kept */}` and `<!-- kept -->` stay,\nso does highlighted text here.",
        "Unknown {props.name} expression and a < b stay too.",
    ]:
        assert kept in prose, kept
    assert "```js title=\"x.js\"\nimport y from 'y';\n<Tabs>\n:::note\n```" in text
    assert "~~~python\n# not a heading\n~~~" in text


def test_mdx_code_block_fences_are_page_content(tmp_path):
    page = page_from(
        tmp_path,
        """# Tabs

```mdx-code-block
import TabItem from '@theme/TabItem';

<Tabs>
<TabItem value="a" label="Apple">

Content A

</TabItem>
</Tabs>
```

````md
```mdx-code-block
shown as code
```
````
""",
    )
    text = section(page, None).text

    assert "Apple:" in text and "Content A" in text
    assert "import TabItem" not in text
    assert "````md\n```mdx-code-block\nshown as code\n```\n````" in text


def test_api_table_rows_become_sections_with_the_site_row_ids(tmp_path):
    page = page_from(
        tmp_path,
        """# Options

## Fields {#fields}

Accepted fields:

```mdx-code-block
<APITable>
```

| Name | Type | Description |
| --- | --- | --- |
| `onBrokenLinks` | `'ignore' \\| 'throw'` | What to do with broken links. |
| `sidebar.hideable` | `boolean` | Hide button. |
| plain | `string` | A plain first cell. |

```mdx-code-block
</APITable>
```

Example configuration follows.

<APITable name="navbar-logo">

| Name | Type |
| --- | --- |
| `alt` | `string` |

</APITable>
""",
    )

    rows = [(item.anchor, item.level, item.heading_path) for item in page.sections if item.level == 3]
    assert rows == [
        ("onBrokenLinks", 3, ("Options", "Fields", "onBrokenLinks")),
        ("sidebar.hideable", 3, ("Options", "Fields", "sidebar.hideable")),
        ("plain", 3, ("Options", "Fields", "plain")),
        ("navbar-logo-alt", 3, ("Options", "Fields", "alt")),
    ]
    assert section(page, "onBrokenLinks").text == (
        "| Name | Type | Description |\n| --- | --- | --- |\n"
        "| `onBrokenLinks` | `'ignore' \\| 'throw'` | What to do with broken links. |"
    )
    assert section(page, "fields").text == "Accepted fields:\n\nExample configuration follows."


def test_a_section_that_only_introduces_its_option_rows_is_left_to_them(tmp_path):
    page = page_from(
        tmp_path,
        """# Plugin

## Configuration {#configuration}

Accepted fields:

<APITable>

| Name | Type | Description |
| --- | --- | --- |
| `trackingID` | `string` | The tracking ID. |

</APITable>

### Example configuration {#ex-config}

Configure it through the preset.
""",
    )

    # "Accepted fields:" alone would be a passage that answers nothing, in the place of one that does.
    assert [item.anchor for item in page.sections] == [None, "trackingID", "ex-config"]
    assert section(page, "trackingID").heading_path == ("Plugin", "Configuration", "trackingID")


def test_markdown_partials_are_inlined_where_they_are_used(tmp_path):
    write(
        tmp_path, "_shared/_tags.mdx", "## Tags File {#tags-file}\n\nUse a tags file.\n\n## Tags\n\nMore.\n"
    )
    page = page_from(
        tmp_path,
        """# Plugin

## Tags

Options.

import TagsSection from './_shared/_tags.mdx';

<TagsSection />

## After
""",
        "plugin.mdx",
    )

    assert [item.anchor for item in page.sections] == [None, "tags", "tags-file", "tags", "after"]
    assert section(page, "tags-file").text == "Use a tags file."
    assert [path.name for path in discover_pages(tmp_path)] == ["plugin.mdx"]


def test_an_unbalanced_esm_block_never_swallows_the_next_heading(tmp_path):
    page = page_from(tmp_path, "import {broken from 'x';\n## Next\n\nStill here.\n")

    assert section(page, "next").text == "Still here."


# --------------------------------------------------------------------------
# The real corpus (facebook/docusaurus website/docs)

needs_corpus = pytest.mark.skipif(not CORPUS_DOCS.is_dir(), reason=NO_CORPUS)


@pytest.fixture(scope="module")
def corpus_pages() -> dict[str, Page]:
    if not CORPUS_DOCS.is_dir():
        pytest.skip(NO_CORPUS)
    return {page.file: page for page in read_book(CORPUS_DOCS, site_url=SITE_URL, route_base_path="docs")}


def eval_anchor_cases() -> list:
    if not EVAL_QUESTIONS.is_file():
        # One skipped case that says why, rather than pytest's "empty parameter set".
        return [pytest.param("", "", marks=pytest.mark.skip(reason=f"no eval questions at {EVAL_QUESTIONS}"))]
    cases = []
    for line in EVAL_QUESTIONS.read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        if question.get("expected_anchor"):
            cases.append((question["expected_files"][0].removeprefix("docs/"), question["expected_anchor"]))
    return cases


@needs_corpus
def test_corpus_discovery_leaves_out_partials():
    found = [path.relative_to(CORPUS_DOCS) for path in discover_pages(CORPUS_DOCS)]

    assert len(found) == 90
    assert not [path for path in found if any(part.startswith("_") for part in path.parts)]


@pytest.mark.parametrize(
    ("file", "url"),
    [
        ("api/docusaurus.config.js.mdx", "https://docusaurus.io/docs/api/docusaurus-config"),
        (
            "guides/markdown-features/markdown-features-tabs.mdx",
            "https://docusaurus.io/docs/markdown-features/tabs",
        ),
        ("api/plugin-methods/README.mdx", "https://docusaurus.io/docs/api/plugin-methods"),
        ("introduction.mdx", "https://docusaurus.io/docs"),
        ("guides/docs/sidebar/index.mdx", "https://docusaurus.io/docs/sidebar"),
        ("advanced/index.mdx", "https://docusaurus.io/docs/advanced"),
        ("api/plugins/overview.mdx", "https://docusaurus.io/docs/api/plugins"),
        ("guides/whats-next.mdx", "https://docusaurus.io/docs/guides/whats-next"),
        (
            "api/plugins/plugin-content-docs.mdx",
            "https://docusaurus.io/docs/api/plugins/@docusaurus/plugin-content-docs",
        ),
    ],
)
def test_corpus_urls_match_the_published_site(corpus_pages, file, url):
    assert corpus_pages[file].url == url


def test_corpus_config_page(corpus_pages):
    page = corpus_pages["api/docusaurus.config.js.mdx"]

    assert page.title == "docusaurus.config.js"
    assert page.description == "API reference for Docusaurus configuration file."
    assert "An array of scripts to load." in section(page, "scripts").text
    assert section(page, "scripts").heading_path[-1] == "scripts"


def test_corpus_partial_sections_appear_in_the_pages_that_import_them(corpus_pages):
    for file in ["api/plugins/plugin-content-docs.mdx", "api/plugins/plugin-content-blog.mdx"]:
        assert "tags.yml" in section(corpus_pages[file], "tags-file").text


def test_corpus_section_text_holds_no_mdx_syntax(corpus_pages):
    leftovers = re.compile(
        r"^\s*(import\s.+\sfrom\s|export\s+(const|default)|:::|</?(TabItem|Tabs|details|APITable)\b)"
    )
    for page in corpus_pages.values():
        for item in page.sections:
            bad = [line for line in prose_only(item.text).split("\n") if leftovers.match(line)]
            assert not bad, (page.file, item.anchor, bad)
            assert "\x00" not in item.text, (page.file, item.anchor)


@pytest.mark.parametrize(("file", "anchor"), eval_anchor_cases())
def test_corpus_eval_anchor_is_a_section(corpus_pages, file, anchor):
    assert anchor in {item.anchor for item in corpus_pages[file].sections}


def test_corpus_resolves_every_eval_anchor(corpus_pages):
    cases = eval_anchor_cases()
    if not cases:
        pytest.skip(f"the labelled eval questions are not at {EVAL_QUESTIONS} (only ../shared has them)")
    missing = [
        case for case in cases if case[1] not in {item.anchor for item in corpus_pages[case[0]].sections}
    ]

    print(f"eval anchors resolved: {len(cases) - len(missing)}/{len(cases)}")
    assert not missing, f"resolved {len(cases) - len(missing)}/{len(cases)}; missing {missing}"
