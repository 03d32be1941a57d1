"""The offline answerer quotes the book, cites [n], and never invents text."""

from app.services.answering.base import AnswerRequest
from app.services.answering.offline import NOT_COVERED, OfflineAnswerer
from app.services.retrieval.retriever import Passage


def passage(text, heading="Watering > Watering tomatoes", file="guides/watering.md"):
    return Passage(file=file, title="Watering", heading=heading, anchor="x", url="u", text=text, score=1.0, similarity=1.0)


def test_answer_quotes_the_sentences_closest_to_the_question_with_citations():
    answerer = OfflineAnswerer()
    text = answerer.compose(
        AnswerRequest(
            question="How often should tomatoes be watered?",
            passages=[
                passage("Tomatoes need deep watering two or three times a week. Mulch keeps soil cool. Pots need holes."),
                passage("Basil likes moist soil.", heading="Watering > Herbs"),
            ],
        )
    )
    assert "Tomatoes need deep watering two or three times a week." in text
    assert "[1]" in text and "[2]" in text
    assert "**Watering > Watering tomatoes**" in text


def test_streamed_pieces_add_up_to_the_composed_answer():
    answerer = OfflineAnswerer()
    request = AnswerRequest(question="basil", passages=[passage("Basil likes moist soil. It grows fast.")])
    assert "".join(answerer.answer(request)) == answerer.compose(request)


def test_no_passages_says_the_book_does_not_cover_it():
    assert OfflineAnswerer().compose(AnswerRequest(question="quarks", passages=[])) == NOT_COVERED


def test_selection_is_quoted_first_and_code_is_not_quoted_inline():
    answerer = OfflineAnswerer()
    text = answerer.compose(
        AnswerRequest(
            question="What do rosemary and thyme prefer?",
            passages=[passage("Intro.\n\n```bash\nrm -rf /\n```\n\nRosemary prefers dry soil.")],
            mode="selection",
            selection="Basil likes moist soil, while rosemary and thyme prefer to dry out between waterings.",
        )
    )
    assert text.startswith("From the passage you selected: Basil likes moist soil, while rosemary")
    assert "rm -rf" not in text


def test_tables_links_and_emphasis_read_as_plain_sentences():
    text = OfflineAnswerer().compose(
        AnswerRequest(
            question="What does the port setting do?",
            passages=[passage("| Setting | Meaning |\n|---|---|\n| `PORT` | The **port** gunicorn binds, see [config](config.md). |")],
        )
    )
    assert "`PORT` — The port gunicorn binds, see config." in text
    assert "|" not in text and "---" not in text and "](" not in text


def test_a_section_of_only_code_points_to_the_example():
    text = OfflineAnswerer().compose(AnswerRequest(question="example", passages=[passage("```bash\nmake run\n```")]))
    assert "(an example; see the section) [1]" in text


def test_names_with_underscores_keep_them():
    text = OfflineAnswerer().compose(
        AnswerRequest(
            question="Which settings?",
            passages=[passage("Set `GEMINI_MODEL` and WEB_CONCURRENCY, or _all_ of the **settings**.")],
        )
    )
    assert "`GEMINI_MODEL` and WEB_CONCURRENCY, or all of the settings." in text
