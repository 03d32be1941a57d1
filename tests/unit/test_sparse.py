"""Keyword analysis: the terms a question and a passage are matched on."""

from app.services.retrieval.sparse import Analyzer, Bm25Encoder, term_id


def test_terms_are_lower_case_stemmed_and_split_at_identifiers():
    terms = Analyzer().terms("Configuring onBrokenLinks in docusaurus.config.js")
    assert terms == ["configur", "onbrokenlinks", "broken", "link", "docusaurus", "config", "js"]


def test_stopwords_and_question_words_are_dropped():
    assert Analyzer().terms("How do I deploy the site?") == ["deploy", "site"]


def test_query_vector_has_each_term_once_weighted_by_saturating_count():
    encoder = Bm25Encoder(bigrams=False)
    once, thrice = encoder.query("deploy"), encoder.query("deploy deploy deploying")
    assert once.indices == thrice.indices == [term_id("deploy")] and once.values == [1.0]
    assert 1.0 < thrice.values[0] < 2.0  # more weight, but three mentions are not three words


def _score(query, document) -> float:
    weights = dict(zip(document.indices, document.values, strict=True))
    return sum(
        value * weights.get(index, 0.0) for index, value in zip(query.indices, query.values, strict=True)
    )


def test_a_long_question_is_matched_on_the_word_it_repeats():
    encoder = Bm25Encoder(avgdl=8)
    # An issue that says "code" four times and its other words once each: the section about code
    # wins over one holding more of the once-said words.
    question = "Load code files: we need our code samples hosted, the code reused, code in one file."
    about_code = encoder.document([("Code snippets from a file.", 1.0)])
    about_hosting = encoder.document([("Hosted samples we need.", 1.0)])
    assert _score(encoder.query(question), about_code) > _score(encoder.query(question), about_hosting)


def test_an_acronym_in_the_plural_is_one_word():
    assert Analyzer().terms("Doc URLs and APIs") == ["doc", "url", "api"]


def test_adjacent_terms_are_indexed_as_pairs():
    vector = Bm25Encoder().query("Google Analytics plugin")
    expected = {term_id(t) for t in ("googl", "analyt", "plugin", "googl analyt", "analyt plugin")}
    assert set(vector.indices) == expected


def test_cjk_text_becomes_character_pairs_and_latin_words_split_off():
    assert Analyzer().terms("Blog列表标题") == ["列表", "表标", "标题", "blog"]


def test_document_weights_saturate_and_fields_count_by_weight():
    encoder = Bm25Encoder(avgdl=10)
    once = encoder.document([("tomato soil", 1.0)])
    heading = encoder.document([("tomato soil", 1.0), ("tomato", 2.0)])
    weight = dict(zip(once.indices, once.values, strict=True))[term_id("tomato")]
    boosted = dict(zip(heading.indices, heading.values, strict=True))[term_id("tomato")]
    assert boosted > weight
    many = encoder.document([("tomato " * 50, 1.0)])
    assert dict(zip(many.indices, many.values, strict=True))[term_id("tomato")] < encoder.k1 + 1


def test_empty_text_gives_an_empty_vector():
    assert not Bm25Encoder().query("the of and")
