"""The relevance floor: keyword evidence, weighted by IDF, decides whether the book covers a question."""

import math

from app.services.index.base import IndexHit
from app.services.retrieval.floor import RelevanceFloor, TermStatistics, searchable_text
from app.services.retrieval.sparse import Bm25Encoder, term_id

ENCODER = Bm25Encoder(avgdl=30)

# A small book: (file, heading, text). Tabs are explained with fruit, as Docusaurus' docs do.
SECTIONS = [
    ("tabs.md", "Tabs", "Use the Tabs component to show alternatives. Example tabs: Apple, Orange, Banana."),
    ("tabs.md", "Syncing tab choices", "Tabs with the same groupId stay in sync across the page."),
    ("sidebar.md", "Sidebar", "The sidebar lists the docs. Configure sidebar items in sidebars.js."),
    ("sidebar.md", "Collapsible categories", "A category of the sidebar can be collapsed by default."),
    ("deploy.md", "Deployment", "Deploy the site to GitHub Pages with the deploy command."),
    ("deploy.md", "Custom domain", "Set a custom domain for the deployed site in the CNAME file."),
    ("blog.md", "Blog", "The blog plugin lists posts; a truncate marker shortens a post in the blog list."),
    ("i18n.md", "Translation", "Translate the docs into another locale with write-translations."),
]


def payload(file, heading, text):
    return {
        "file": file,
        "heading": heading,
        "heading_path": [file, heading],
        "title": file[:-3],
        "text": text,
    }


PAYLOADS = [payload(*section) for section in SECTIONS]
STATS = TermStatistics.of_texts((searchable_text(p) for p in PAYLOADS), ENCODER.analyzer)


def keyword_hits(question):
    """What Qdrant's keyword query returns: sections holding a query term, by BM25 (IDF applied)."""
    query = set(ENCODER.query(question).indices)
    hits = []
    for i, p in enumerate(PAYLOADS):
        vector = ENCODER.document([(p["text"], 1.0), (p["heading"], 2.0), (p["title"], 2.0)])
        score = sum(
            value * STATS_WITH_PAIRS.get(index, 0.0)
            for index, value in zip(vector.indices, vector.values, strict=True)
            if index in query
        )
        if score > 0:
            hits.append(IndexHit(str(i), score, p))
    return sorted(hits, key=lambda h: -h.score)


def _idf_of_every_index():
    counts = {}
    for p in PAYLOADS:
        vector = ENCODER.document([(p["text"], 1.0), (p["heading"], 2.0), (p["title"], 2.0)])
        for index in vector.indices:
            counts[index] = counts.get(index, 0) + 1
    n = len(PAYLOADS)
    return {index: math.log((n - c + 0.5) / (c + 0.5) + 1) for index, c in counts.items()}


STATS_WITH_PAIRS = _idf_of_every_index()
FLOOR = RelevanceFloor(ENCODER.analyzer)


def judge(question):
    return FLOOR.judge(question, keyword_hits(question), STATS)


def test_a_question_about_a_topic_of_the_book_is_covered():
    verdict = judge("How do I configure the sidebar items?")
    assert verdict.covered and verdict.page == "sidebar.md" and verdict.share == 1.0


def test_a_question_sharing_one_word_with_the_book_is_refused():
    # "banana" is in the tabs example, but the word the book lacks ("calories") weighs most.
    verdict = judge("How many calories are in a banana?")
    assert keyword_hits("How many calories are in a banana?")  # the keyword query does match
    assert not verdict.covered and verdict.share < 0.5


def test_nothing_matched_is_refused():
    assert not judge("quantum chromodynamics lattice").covered
    assert not FLOOR.judge("sidebar", [], STATS).covered


def test_an_everyday_word_the_book_never_uses_does_not_sink_a_question():
    # "should" is not in this small book: it would weigh most, yet it names no other topic.
    assert not STATS.known("should")
    assert judge("Where should I set a custom domain?").covered


def test_a_long_question_with_chatter_needs_a_smaller_share():
    question = (
        "Hi, thanks for the great project! We really love it. Our team wants to deploy the site to "
        "GitHub Pages with a custom domain, but after running the command nothing happens at all."
    )
    verdict = judge(question)
    assert verdict.terms >= 8 and verdict.share < 0.5
    assert verdict.covered and verdict.page == "deploy.md"


def test_chinese_words_the_book_lacks_leave_the_latin_ones_to_judge():
    verdict = judge("Blog列表是否改成标题，全部列出来太多了")
    assert verdict.terms == 1 and verdict.covered and verdict.page == "blog.md"


def test_term_statistics_weigh_rare_terms_more():
    assert STATS.sections == len(SECTIONS)
    assert STATS.idf("banana") > STATS.idf("sidebar") > 0
    assert STATS.idf("never-seen") > STATS.idf("banana")
    assert STATS.frequencies[term_id("sidebar")] == 2
