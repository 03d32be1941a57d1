"""The streaming Markdown-to-text filter: plain prose whatever the split of the stream."""

import pytest

from app.services.answering.plaintext import MarkdownToText, markdown_to_text

SAMPLES = [
    # (Markdown as a model may write it, the plain text the widget must show)
    (
        "**Swizzling** lets you replace a theme component [1].",
        "Swizzling lets you replace a theme component [1].",
    ),
    ("Run `npm run build` to build the site [2].", "Run npm run build to build the site [2]."),
    (
        "## Steps\n\n- Create `blog/2024-01-01-hello.md` [1]\n- Add *front matter* [1][3]\n1. Start the "
        "server.",
        "Steps.\n\nCreate blog/2024-01-01-hello.md [1].\nAdd front matter [1][3].\nStart the server.",
    ),
    (
        "Set `GEMINI_MODEL` and snake_case_names or __init__ [1].",
        "Set GEMINI_MODEL and snake_case_names or init [1].",
    ),
    (
        "See [the docs](https://docusaurus.io/docs) and ![logo](img/logo.png) [2].",
        "See the docs and logo [2].",
    ),
    (
        "Use:\n\n```bash\nnpm run swizzle\n```\n\nThen restart [1].",
        "Use:\n\nnpm run swizzle\n\nThen restart [1].",
    ),
    ("| Name | Type |\n| --- | --- |\n| `slug` | string |\n", "Name; Type.\nslug; string.\n"),
    (
        "> **Note**: 5*3 is not a * b, and \\*stars\\* stay.\n---\nEnd.",
        "Note: 5*3 is not a * b, and *stars* stay.\nEnd.",
    ),
    ("A list [1, 3] and a [plain] bracket [2].", "A list [1, 3] and a [plain] bracket [2]."),
]


@pytest.mark.parametrize(("markdown", "plain"), SAMPLES)
def test_markers_are_removed(markdown, plain):
    assert markdown_to_text(markdown) == plain


@pytest.mark.parametrize(("markdown", "plain"), SAMPLES)
def test_every_split_point_gives_the_same_text(markdown, plain):
    # "**" as "*" + "*", a "`" ending a chunk, "- " at a line start arriving in the next chunk...
    for cut in range(1, len(markdown)):
        for second_cut in (cut + 1, cut + 3):
            parts = [markdown[:cut], markdown[cut:second_cut], markdown[second_cut:]]
            filtered = MarkdownToText()
            assert "".join(filtered.feed(p) for p in parts) + filtered.finish() == plain, parts


@pytest.mark.parametrize(("markdown", "plain"), SAMPLES)
def test_one_character_at_a_time(markdown, plain):
    filtered = MarkdownToText()
    assert "".join(filtered.feed(c) for c in markdown) + filtered.finish() == plain


def test_plain_prose_streams_without_waiting():
    filtered = MarkdownToText()
    assert filtered.feed("Docusaurus builds ") == "Docusaurus builds"  # the space waits for a word
    assert filtered.feed("static sites [1]. ") == " static sites [1]."


def test_an_unclosed_bracket_is_released_at_the_end():
    filtered = MarkdownToText()
    assert filtered.feed("Arrays start at [") == "Arrays start at"
    assert filtered.finish() == " ["
