"""The retrieval benchmark runs the service's own retrieval code, keyword-only and hybrid."""

import json

from bench.eval_retrieval import main
from tests.conftest import FIXTURE_BOOK
from tests.fakes.gemini_server import FakeGemini

QUESTIONS = [
    {
        "id": "q1",
        "question": "How often should I water tomatoes?",
        "expected_files": ["guides/watering.md"],
        "expected_anchor": "watering-tomatoes",
    },
    {
        "id": "q2",
        "question": "When do seedlings go outside after frost?",
        "expected_files": ["api/configuration.mdx"],
        "expected_anchor": "frost-dates",
    },
    {
        "id": "q3",
        "question": "Who is this balcony book for?",
        "expected_files": ["intro.md"],
        "expected_anchor": None,
    },
]
# Labelled, but beyond the book's words: the floor refuses it, and that is reported as a refusal.
REFUSED = {
    "id": "q4",
    "question": "Which fertiliser brand is cheapest?",
    "expected_files": ["intro.md"],
    "expected_anchor": None,
}


OFF_TOPIC = [
    {"id": "o1", "question": "What is the stock price of Apple?"},
    {"id": "o2", "question": "quantum chromodynamics lattice"},
]


def run(tmp_path, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS + [REFUSED]))
    offtopic = tmp_path / "off.jsonl"
    offtopic.write_text("\n".join(json.dumps(q) for q in OFF_TOPIC))
    argv = [
        "--docs",
        str(FIXTURE_BOOK),
        "--questions",
        str(questions),
        "--offtopic",
        str(offtopic),
        "--site-url",
        "",
        "--route-base-path",
        "/",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "hit@1" in out.splitlines()[-1] and "mrr@10" in out  # a table, then the JSON line
    return json.loads(out.strip().splitlines()[-1])


def test_keyword_evaluation_prints_metrics(tmp_path, capsys):
    metrics = run(tmp_path, capsys)
    assert set(metrics) == {
        "n",
        "hit@1",
        "hit@5",
        "mrr@10",
        "section_hit@5",
        "refused",
        "ranking_miss@5",
        "offtopic_n",
        "offtopic_refused",
    }
    assert metrics["n"] == 4 and metrics["hit@1"] == 0.75 and metrics["section_hit@5"] == 1.0
    # The refused question is a refusal, not a ranking miss; both off-topic questions are refused.
    assert metrics["refused"] == 1 and metrics["ranking_miss@5"] == 0
    assert metrics["offtopic_n"] == 2 and metrics["offtopic_refused"] == 2


def test_hybrid_evaluation_with_gemini_configured(tmp_path, capsys, monkeypatch):
    with FakeGemini(api_key="eval-key") as fake:
        monkeypatch.setenv("GEMINI_API_KEY", "eval-key")
        monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
        metrics = run(tmp_path, capsys)
        embeds = [r for r in fake.requests if r.method_name == "batchEmbedContents"]
    assert metrics["hit@5"] == 0.75 and metrics["refused"] == 1 and metrics["offtopic_refused"] == 2
    assert any(r.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY" for r in embeds)
