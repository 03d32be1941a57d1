"""The offline answerer: the section that answers, quoted whole sentence by sentence with its
command or snippet, each piece cited; follow-ups that add, selections explained."""

import re

import pytest

from app.services.answering.base import AnswerRequest
from app.services.answering.offline import NOT_COVERED, OfflineAnswerer
from app.services.answering.shaping import AnswerShaper
from app.services.answering.units import passage_sentences
from app.services.ingestion.docusaurus import parse_page
from app.services.retrieval.retriever import Passage
from tests.conftest import FIXTURE_BOOK


def passage(text, heading="Watering > Watering tomatoes", file="guides/watering.md"):
    return Passage(
        file=file,
        title="Watering",
        heading=heading,
        anchor="x",
        url="u",
        text=text,
        score=1.0,
        similarity=1.0,
    )


def answerer():
    # Every word the book knows weighs the same (a book's IDF, without a book): these tests are
    # about composing, not about weighing words.
    return OfflineAnswerer(book_idf=lambda: lambda term: 1.0)


def compose(question, *texts, **request):
    passages = [
        passage(t, heading=f"Page {i} > Section") if isinstance(t, str) else t for i, t in enumerate(texts)
    ]
    return answerer().compose(AnswerRequest(question=question, passages=passages, **request))


def sentences(answer):
    return re.findall(r".+?(?:\[\d+\]\.|\[\d+\])(?=\s|$)", answer)


def test_the_sentences_that_answer_are_quoted_whole_each_ending_with_its_citation():
    answer = compose(
        "How often should tomatoes be watered?",
        "Tomatoes need deep watering two or three times a week. Mulch keeps the soil cool in summer. Pots "
        "need holes.",
        "Basil likes moist soil and a sunny window sill.",
    )
    assert answer.startswith("Tomatoes need deep watering two or three times a week [1].")
    assert "Pots need holes" not in answer  # too short to stand on its own
    for sentence in sentences(answer):
        assert sentence.strip()[0].isupper() and re.search(r" \[\d\]\.$", sentence)


def test_what_is_x_puts_the_defining_sentence_first():
    answer = compose(
        "What is swizzling?",
        "Restart your dev server after swizzling so swizzling changes to swizzled components show up. "
        "Swizzling is the process of replacing a theme component with your own implementation. "
        "You can swizzle any component of the classic theme.",
    )
    assert answer.startswith(
        "Swizzling is the process of replacing a theme component with your own implementation [1]."
    )


def test_each_citation_names_the_passage_its_sentence_was_quoted_from():
    # The answerer cites passages by their number, as a model does; the chat turn's shaper then
    # renumbers in order of first appearance and lists exactly those passages as the sources.
    passages = [
        passage(
            "Netlify builds the site from your repository on every push.",
            heading="Netlify > Builds",
            file="netlify.md",
        ),
        passage(
            "Surge publishes a folder from the command line in a few seconds.",
            heading="Surge > Publish",
            file="surge.md",
        ),
        passage(
            "To deploy the site to GitHub Pages, run the deploy command with your GitHub user name.",
            heading="GitHub Pages > Deploy",
            file="github.md",
        ),
    ]
    answer = answerer().compose(
        AnswerRequest(question="How do I deploy the site to GitHub Pages?", passages=passages)
    )
    assert answer.startswith("To deploy the site to GitHub Pages") and " [3]." in answer
    assert "Netlify" not in answer and "Surge" not in answer  # "the site" is no link to the question
    shaper = AnswerShaper(passages, strip_markdown=False)
    shown = shaper.feed(answer) + shaper.finish()
    assert shown.startswith(
        "To deploy the site to GitHub Pages, run the deploy command with your GitHub user name [1]."
    )
    assert [source["file"] for source in shaper.sources] == ["github.md"]


def test_table_rows_are_quoted_by_their_option_and_the_example_config_inline():
    answer = compose(
        "Which fields does the analytics plugin accept?",
        "Accepted fields:\n\n| Name | Type | Default | Description |\n| --- | --- | --- | --- |\n"
        "| `trackingID` | `string` | **Required** | The tracking ID of your analytics service. |\n"
        "| `anonymizeIP` | `boolean` | `false` | Whether the IP should be anonymized when sending "
        "requests. |\n\n"
        'Example configuration:\n\n```js title="docusaurus.config.js"\nmodule.exports = '
        "{\n  trackingID: 'x',\n};\n```\n\n"
        "The analytics plugin accepts a tracking ID and an IP option.",
    )
    assert "|" not in answer and "—" not in answer and "`" not in answer  # no row flattened, no Markdown
    assert "Accepted fields" not in answer and ":[" not in answer and ": [" not in answer
    assert "trackingID (string, default Required): The tracking ID of your analytics service [1]." in answer
    assert (
        "Example configuration, in docusaurus.config.js: module.exports = { trackingID: 'x', }; [1]."
        in answer
    )


def test_a_list_introduced_by_a_colon_is_folded_into_its_sentence():
    answer = compose(
        "What search options are there?",
        "There are a few search options you can use on your website:\n\n"
        "- 🥇 [Algolia DocSearch](#algolia) (**official**)\n- 👥 [Local Search](#local)\n- Your own "
        "`SearchBar` component\n",
    )
    assert answer.startswith(
        "There are a few search options you can use on your website: Algolia DocSearch (official), "
        "Local Search and your own SearchBar component [1]."
    )


def test_broken_text_never_comes_out():
    answer = compose(
        "How do I set the host of the server?",
        "To reach the dev server from other machines, set the host with `--host 0.0.0.0`. "
        "If the page is not a doc page, fall back to... "
        "the server host is set (see the host option. The host option also sets the host name of the server!",
    )
    assert ".." not in answer and "…" not in answer and "(see" not in answer
    assert "set the host with --host 0.0.0.0 [1]." in answer


def test_markdown_format_keeps_code_spans_and_text_format_writes_names_plainly():
    text = "Set `GEMINI_MODEL` and WEB_CONCURRENCY to tune the service, or _all_ of the **settings**."
    plain = compose("Which settings tune the service?", text)
    markdown = compose("Which settings tune the service?", text, format="markdown")
    assert plain == "Set GEMINI_MODEL and WEB_CONCURRENCY to tune the service, or all of the settings [1]."
    assert (
        markdown == "Set `GEMINI_MODEL` and WEB_CONCURRENCY to tune the service, or all of the settings [1]."
    )


def test_between_two_and_five_sentences():
    many = " ".join(f"Tomatoes need watering in week {n} of the tomato season." for n in range(12))
    assert 2 <= len(sentences(compose("When do tomatoes need watering?", many))) <= 5


def test_a_section_of_only_code_is_quoted_under_its_heading():
    answer = compose("example", passage("```bash\nmake run\n```", heading="Guide > Running > Example"))
    assert answer == "From “Example”: make run [1]."


def test_streamed_pieces_add_up_to_the_composed_answer():
    answerer = globals()["answerer"]()
    request = AnswerRequest(
        question="basil", passages=[passage("Basil likes moist soil. It grows fast in a warm place.")]
    )
    assert "".join(answerer.answer(request)) == answerer.compose(request)


def test_no_passages_says_the_book_does_not_cover_it():
    assert answerer().compose(AnswerRequest(question="quarks", passages=[])) == NOT_COVERED


def test_a_selection_is_explained_from_its_section_not_echoed():
    selection = "Basil likes moist soil, while rosemary and thyme prefer to dry out between waterings."
    section = (
        f"{selection} Water herbs in pots when the top two centimetres of soil are dry. "
        "Herbs that dry out between waterings grow a stronger scent."
    )
    answer = compose("What does this mean?", section, mode="selection", selection=selection)
    assert "Basil likes moist soil" not in answer and "rosemary and thyme prefer" not in answer
    assert "Water herbs in pots when the top two centimetres of soil are dry [1]." in answer


def book_sections():
    for path in sorted(FIXTURE_BOOK.rglob("*.md*")):
        page = parse_page(FIXTURE_BOOK, path)
        for section in page.sections:
            yield " > ".join(section.heading_path), section.text


@pytest.mark.parametrize(("heading", "text"), list(book_sections()))
def test_every_section_of_the_fixture_book_reads_as_plain_cited_prose(heading, text):
    question = f"What about {heading.split(' > ')[-1]}?"
    answer = compose(question, passage(text, heading=heading))
    assert not re.search(r"\*\*|`|^\s*[-*+] |\|", answer, re.MULTILINE), answer
    assert ".." not in answer.replace("...", "") and ":[" not in answer and ": [" not in answer
    assert answer.endswith("].")
    for sentence in passage_sentences(text):
        assert sentence.text.count("(") == sentence.text.count(")")


def test_a_how_to_answer_carries_the_sections_command():
    text = (
        "To start the dev server of your site, run this command:\n\n```bash\nnpm run start\n```\n\n"
        "The dev server reloads the page when a file of the site changes."
    )
    answer = compose("How do I start the dev server?", text)
    assert answer.startswith("To start the dev server of your site, run this command: npm run start [1].")
    markdown = compose("How do I start the dev server?", text, format="markdown")
    assert markdown.startswith(
        "To start the dev server of your site, run this command [1]:\n\n```bash\nnpm run start\n```"
    )


def test_a_long_code_block_is_trimmed_to_the_lines_that_matter():
    config = "\n".join(
        ["export default {"]
        + [f"  option{n}: {n}," for n in range(30)]
        + ["  announcementBar: {id: 'x'},", "};"]
    )
    text = f"Add an announcement bar to the top of every page:\n\n```js\n{config}\n```\n"
    answer = compose("How do I add an announcement bar?", text, format="markdown")
    code = answer.split("```js\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert "announcementBar: {id: 'x'}," in code and len(code) <= 10
    assert code[0] == "…"  # where the excerpt starts inside the block


def test_a_workflow_that_reads_as_markup_on_one_line_is_quoted_by_its_plainer_lines():
    workflow = "\n".join(
        [
            "name: Deploy",
            "on:",
            "  push:",
            "    branches: [main]",
            "jobs:",
            "  deploy:",
            "    runs-on: ubuntu-latest",
            "    steps:",
            "      - uses: actions/checkout@v4",
            "      - name: Upload the site",
            "        uses: actions/upload-pages-artifact@v3",
            "      - name: Deploy to the garden pages",
            "        uses: actions/deploy-garden-pages@v4",
        ]
    )
    text = f"Deploy the garden site on every push with this workflow:\n\n```yaml\n{workflow}\n```\n"
    answer = compose("How do I deploy the garden site with a workflow action?", text)
    # "on: push: branches:" on one line reads as noise; the lines that deploy read plain.
    assert "uses: actions/deploy-garden-pages@v4" in answer
    assert "on: push:" not in answer


def test_an_option_description_keeps_its_option_and_type():
    text = (
        "- Type: `'ignore' | 'log' | 'warn' | 'throw'`\n\n"
        "The behavior of Docusaurus when it detects any broken link."
    )
    option = Passage(
        file="config.md",
        title="Config",
        heading="docusaurus.config.js > Optional fields > onBrokenLinks",
        anchor="onBrokenLinks",
        url="u",
        text=text,
        score=1.0,
        similarity=1.0,
    )
    answer = answerer().compose(
        AnswerRequest(question="Can the build fail on broken links?", passages=[option])
    )
    assert answer.startswith("onBrokenLinks: The behavior of Docusaurus when it detects any broken link [1].")
    assert "Type: 'ignore' | 'log' | 'warn' | 'throw' [1]." in answer


def test_no_orphan_connective_survives():
    text = (
        "Here are two approaches to deploying your docs with GitHub Actions.\n\n"
        "However, the deploy job needs a token with write access to deploy the docs."
    )
    answer = compose(
        "How do I deploy the docs with GitHub Actions?",
        text,
        "GitHub Actions deploy the docs from a workflow file.",
    )
    assert "Here are two approaches" not in answer  # what it announces is not quoted
    assert "However" not in answer  # what it continues is not quoted
    assert answer == "GitHub Actions deploy the docs from a workflow file [2]."


def test_a_follow_up_adds_instead_of_repeating_its_predecessor():
    text = (
        "To start the dev server of your site, run the start script of the project. "
        "The dev server reloads the page when a file of the site changes.\n\n"
        "Run this command:\n\n```bash\nnpm run start -- --port 3001\n```\n"
    )
    first = compose("What does the dev server do when a file changes?", text)
    history = [("user", "What does the dev server do when a file changes?"), ("assistant", first)]
    follow_up = compose("Can you give an example?", text, history=history)
    assert "npm run start -- --port 3001" in follow_up
    for sentence in sentences(first):
        assert sentence not in follow_up


def test_a_follow_up_does_not_show_again_the_line_of_a_long_block_already_shown():
    fields = "\n".join(
        f"  field{n}?: string; // a long comment that says what field {n} holds, for the reader who reads "
        "the type from its top to its very end, line after line, slowly, with a cup of tea, "
        "in the shade of the old stone wall"
        for n in range(30)
    )
    text = (
        "The banner of a garden version says whether the garden is still tended.\n\n"
        "```ts\ntype Options = "
        f"{{\n{fields}\n  banner?: 'none' | 'unreleased' | 'unmaintained';\n}};\n```\n\n"
        "Set the banner to none to hide it on every page of the version."
    )
    question = "How do I hide the garden version banner?"
    first = compose(question, text)
    assert "banner?: 'none' | 'unreleased' | 'unmaintained';" in first
    history = [("user", question), ("assistant", first)]

    follow_up = compose("Can you give an example?", text, history=history)

    assert "banner?: 'none'" not in follow_up


def test_a_follow_up_does_not_show_again_the_plainer_window_of_a_workflow_already_shown():
    workflow = "\n".join(
        [
            "on:",
            "  push:",
            "    branches: [main]",
            "jobs:",
            "  publish:",
            "    runs-on: ubuntu-latest",
            "    steps:",
            "      - uses: actions/deploy-garden-pages@v4",
        ]
    )
    text = f"Deploy the garden site on every push with this workflow:\n\n```yaml\n{workflow}\n```\n"
    question = "How do I deploy the garden site with a workflow action?"
    first = compose(question, text)
    # The whole block reads as markup on one line ("on: push:"): its plainer window is quoted.
    assert "uses: actions/deploy-garden-pages@v4" in first and "on: push:" not in first
    history = [("user", question), ("assistant", first)]

    follow_up = compose("Can you give an example?", text, history=history)

    # The plainer window is chosen after what the reader has was set aside: it is set aside too.
    assert "deploy-garden-pages" not in follow_up


def test_a_follow_up_does_not_show_again_a_long_line_shown_cut():
    event = "{" + ", ".join(f'"field{n}": "the value of field {n}"' for n in range(14)) + "}"
    text = (
        "The garden service streams its answer as events, one line each.\n\n"
        f"The last event of the garden stream looks like this:\n\n```json\n{event}\n```\n"
    )
    question = "What does the last event of the garden stream look like?"
    first = compose(question, text)
    assert '"field0"' in first and '"field13"' not in first  # one line of text, cut
    history = [("user", question), ("assistant", first)]

    follow_up = compose("Can you give an example?", text, history=history)

    # The reader saw the line as far as it was cut: that is the line already shown.
    assert '"field0"' not in follow_up


def test_an_admonition_title_is_a_label_not_the_start_of_a_sentence():
    answer = compose(
        "Is Qdrant Cloud indexed at start-up?",
        "Warning: Qdrant Cloud is not indexed at start-up\n`INDEX_ON_START` applies to the embedded index "
        "only.",
    )
    assert answer == "INDEX_ON_START applies to the embedded index only [1]."


def test_what_the_selection_already_says_is_not_quoted_again_from_the_book():
    text = "Basil likes moist soil and a sunny window sill. Rosemary prefers to dry out between waterings."
    answer = compose("What does basil like?", text, mode="selection", selection=text)
    assert "Basil likes moist soil" not in answer


def test_with_no_word_in_common_the_best_passage_opens_the_answer():
    answer = compose(
        "Wie gieße ich Tomaten?",
        "Tomatoes need deep watering two or three times a week. Mulch keeps the soil cool in summer. Pots "
        "drain well.",
        "Basil likes moist soil and a sunny window sill.",
    )
    assert answer == (
        "Tomatoes need deep watering two or three times a week [1]. Mulch keeps the soil cool in summer [1]."
    )


def page_passage(text, file, heading, similarity):
    return Passage(
        file=file,
        title=file,
        heading=heading,
        anchor=heading,
        url="u",
        text=text,
        score=1.0,
        similarity=similarity,
    )


TOMATO_PAGE = (
    "Tomatoes need deep watering two or three times a week in summer. "
    "Watering tomatoes in the morning keeps their leaves dry. "
    "Tomatoes in pots need watering every day when it is hot. "
    "Watering tomatoes at the roots, not on the leaves, prevents blight."
)
TOMATO_CARE = (
    "Watering tomatoes at the roots, not on the leaves, prevents blight. Tomatoes need less watering once "
    "the fruit "
    "ripens. Tomatoes grown in the shade need watering less often."
)


def test_a_strong_second_page_contributes_what_the_first_lacks():
    # The first page answers how often; the second, strong too, says what else the question asked.
    passages = [
        page_passage(TOMATO_PAGE, "tomatoes.md", "Tomatoes > Watering", 1.0),
        page_passage(
            "Tomato seedlings need spraying with a fine mist twice a day.",
            "seedlings.md",
            "Seedlings > Spraying",
            0.8,
        ),
    ]
    request = AnswerRequest(
        question="How often do tomatoes need watering, and how are seedlings sprayed?", passages=passages
    )
    shaper = AnswerShaper(passages, strip_markdown=False)
    shown = shaper.feed(answerer().compose(request)) + shaper.finish()
    cited = {source["file"]: n for n, source in enumerate(shaper.sources, 1)}
    assert list(cited) == ["tomatoes.md", "seedlings.md"]
    assert f"Tomato seedlings need spraying with a fine mist twice a day [{cited['seedlings.md']}]." in shown
    assert 2 <= len(sentences(shown)) <= 5


def test_a_sentence_linked_to_the_question_by_one_common_word_is_not_quoted():
    passages = [
        page_passage(TOMATO_PAGE, "tomatoes.md", "Tomatoes > Watering", 1.0),
        page_passage("Mulch keeps the soil cool in summer.", "mulch.md", "Mulch > Pots", 0.55),
    ]
    answer = answerer().compose(
        AnswerRequest(question="How often do tomatoes in pots need watering in summer?", passages=passages)
    )
    assert "Mulch" not in answer and "[2]" not in answer
    assert answer.startswith("Tomatoes need deep watering")


def test_a_weak_page_is_not_quoted_however_well_its_words_match():
    passages = [
        page_passage(TOMATO_PAGE, "tomatoes.md", "Tomatoes > Watering", 1.0),
        page_passage(
            "Watering seedlings and tomatoes too often drowns their seedlings roots.",
            "seedlings.md",
            "Seedlings > Watering",
            0.3,
        ),
    ]
    answer = answerer().compose(
        AnswerRequest(question="How often does watering tomatoes and seedlings need?", passages=passages)
    )
    assert "drowns" not in answer and "[2]" not in answer
    assert answer.startswith("Tomatoes need deep watering")


def test_a_section_that_is_one_table_row_is_quoted_for_its_place_in_the_book():
    # API tables are indexed a section per row: "Navbar dropdown > items" is about dropdowns
    # although the row is named "items", so it is not discounted as a row the question skips.
    row = (
        "| Name | Type | Default | Description |\n| --- | --- | --- | --- |\n"
        "| `items` | `LinkLikeItem[]` | **Required** | The items to be contained in the navbar dropdown. |\n"
    )
    passages = [
        page_passage(row, "theme.md", "Theme configuration > Navbar dropdown > items", 1.0),
        page_passage(
            "The version dropdown lists every docs version. Each version in the dropdown links to its docs. "
            "The dropdown is placed in the navbar by default.",
            "versioning.md",
            "Versioning > Versions",
            0.6,
        ),
    ]
    answer = answerer().compose(AnswerRequest(question="Can a navbar dropdown be nested?", passages=passages))
    assert answer.startswith(
        "items (LinkLikeItem[], default Required): The items to be contained in the navbar dropdown [1]."
    )


def test_a_selection_answer_cites_the_section_it_explains_from():
    selection = "Basil likes moist soil, while rosemary and thyme prefer to dry out between waterings."
    herbs = page_passage(
        f"{selection} Herbs in pots need watering when their soil is dry at the top.",
        "guides/watering.md",
        "Watering > Watering herbs",
        1.0,
    )
    tomatoes = page_passage(TOMATO_PAGE, "guides/watering.md", "Watering > Watering tomatoes", 0.5)
    passages = [herbs, tomatoes]
    request = AnswerRequest(
        question="What does this mean for herbs in pots?",
        passages=passages,
        mode="selection",
        selection=selection,
    )
    shaper = AnswerShaper(passages, strip_markdown=False)
    shown = shaper.feed(answerer().compose(request)) + shaper.finish()
    assert shown.startswith("Herbs in pots need watering when their soil is dry at the top [1].")
    assert selection[:30] not in shown
    assert shaper.sources[0]["heading"] == "Watering > Watering herbs"


def test_a_sentence_of_code_spans_is_not_quoted():
    # A label ("Support multiple patterns:") is stripped, and what is left is code, not prose.
    text = "Support multiple patterns: `slug: my-blog-post`, `slug: /my/path/to/blog/post`, slug: `/`."
    assert passage_sentences(text) == []
    assert passage_sentences("Set the `slug` front matter to change the URL of a post.") != []


def test_a_path_keeps_its_leading_dot_and_a_comment_its_words():
    assert passage_sentences("Delete the existing homepage at `./src/pages/index.js` before you start.")[
        0
    ].text == ("Delete the existing homepage at ./src/pages/index.js before you start.")
    text = (
        "Pass it to the docs plugin instead:\n\n"
        "```js\nmodule.exports = "
        "{\n  docs: {\n    // Equivalent to `docsUrl`.\n    routeBasePath: 'docs',\n  },\n};\n```\n"
    )
    answer = compose("How do I set docsUrl?", text)
    assert answer == (
        "Pass it to the docs plugin instead: module.exports = { docs: { // Equivalent to docsUrl. "
        "routeBasePath: 'docs', }, }; [1]."
    )


def test_a_follow_up_moves_the_same_option_to_what_it_names():
    docs = page_passage(
        "Set `showLastUpdateTime` to `true` in the docs plugin options to show when each doc page was "
        "last updated.",
        "docs-plugin.md",
        "Docs plugin > showLastUpdateTime",
        1.0,
    )
    blog = page_passage(
        "Set `showLastUpdateTime` to `true` in the blog plugin options to show when each blog post was "
        "last updated.",
        "blog-plugin.md",
        "Blog plugin > showLastUpdateTime",
        1.0,
    )
    # The first question's retrieval ranks the blog far below; the follow-up's (the previous
    # question and "blog") ranks both pages high.
    weak_blog = page_passage(blog.text, "blog-plugin.md", "Blog plugin > showLastUpdateTime", 0.3)
    first = answerer().compose(
        AnswerRequest(question="How do I show the last update time of a doc?", passages=[docs, weak_blog])
    )
    assert first.startswith("showLastUpdateTime: Set showLastUpdateTime to true in the docs plugin")
    history = [("user", "How do I show the last update time of a doc?"), ("assistant", first)]
    follow_up = answerer().compose(
        AnswerRequest(question="And for the blog?", passages=[docs, blog], history=history)
    )
    assert follow_up.startswith(
        "showLastUpdateTime: Set showLastUpdateTime to true in the blog plugin options"
    )
    assert "docs plugin" not in follow_up


def test_a_numbered_procedure_answers_a_how_to_whole_and_in_order():
    text = (
        "The browser blocks the widget when the service does not allow the book's origin.\n\n"
        "1. Find the page's exact origin, such as `https://my-book.example`.\n"
        "2. Add it to `ALLOWED_ORIGINS`, comma-separated, without a path.\n"
        "3. Restart the service so that it reads the new setting.\n"
    )
    answer = compose("Why does the browser block the widget?", text)
    steps = ["Find the page's exact origin", "Add it to ALLOWED_ORIGINS", "Restart the service"]
    assert all(step in answer for step in steps)
    assert answer.index(steps[0]) < answer.index(steps[1]) < answer.index(steps[2])


def test_a_sentence_that_only_points_elsewhere_gives_way_to_one_that_says_what_to_do():
    answer = compose(
        "How do I water tomatoes in pots?",
        "Water tomatoes in pots every morning, at the roots. Pots of tomatoes dry out by noon in summer. "
        "Tomatoes in pots grow well on a balcony. See the tomato watering guide for more information "
        "about pots.",
    )
    assert "every morning, at the roots [1]" in answer
    assert "See the tomato watering guide" not in answer


def test_a_how_to_quotes_the_command_not_the_output_that_matched_the_question():
    answer = compose(
        "How can I see which tomatoes need water?",
        "Run the garden report:\n\n```bash\ngarden report --since 7d\n```\n\nIt prints:\n\n"
        "```text\nTomatoes that need water: 3\nTomatoes watered today: 5\n```\n",
    )
    assert "garden report --since 7d" in answer
    assert "Tomatoes that need water: 3" not in answer


def test_a_section_is_judged_with_its_page_title_so_the_page_steps_follow_its_prerequisites():
    # Retrieval finds both sections by the page's title; the steps barely repeat the title's words.
    def section(heading, text):
        return Passage(
            file="guides/greenhouse.md",
            title="Moving tomatoes to the greenhouse",
            heading=f"Moving tomatoes to the greenhouse > {heading}",
            anchor=heading.lower(),
            url="u",
            text=text,
            score=1.0,
            similarity=1.0,
        )

    answer = answerer().compose(
        AnswerRequest(
            question="How do I move tomatoes to the greenhouse?",
            passages=[
                section(
                    "Before you start",
                    "Tomatoes move to the greenhouse once nights stay above ten degrees. "
                    "Greenhouse tomatoes need a tray each.",
                ),
                section(
                    "Push the trays",
                    "Push the trays in, one row at a time:\n\n"
                    "```bash\ntrays push --into greenhouse --row 3\n```\n",
                ),
            ],
        )
    )
    assert "trays push --into greenhouse --row 3" in answer
