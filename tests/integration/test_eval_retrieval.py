"""The retrieval benchmark runs the service's own retrieval code, keyword-only and hybrid."""

import json

from bench.eval_retrieval import main
from tests.conftest import FIXTURE_BOOK
from tests.fakes.gemini_server import FakeGemini

QUESTIONS = [
    {"id": "q1", "question": "How often should I water tomatoes?", "expected_files": ["guides/watering.md"], "expected_anchor": "watering-tomatoes"},
    {"id": "q2", "question": "When do seedlings go outside after frost?", "expected_files": ["api/configuration.mdx"], "expected_anchor": "frost-dates"},
    {"id": "q3", "question": "Who is this balcony book for?", "expected_files": ["intro.md"], "expected_anchor": None},
]


def run(tmp_path, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in QUESTIONS))
    assert main(["--docs", str(FIXTURE_BOOK), "--questions", str(questions), "--site-url", "", "--route-base-path", "/"]) == 0
    out = capsys.readouterr().out
    assert "hit@1" in out.splitlines()[-1] and "mrr@10" in out  # a table, then the JSON line
    return json.loads(out.strip().splitlines()[-1])


def test_keyword_evaluation_prints_metrics(tmp_path, capsys):
    metrics = run(tmp_path, capsys)
    assert set(metrics) == {"n", "hit@1", "hit@5", "mrr@10", "section_hit@5"}
    assert metrics["n"] == 3 and metrics["hit@1"] == 1.0 and metrics["section_hit@5"] == 1.0


def test_hybrid_evaluation_with_gemini_configured(tmp_path, capsys, monkeypatch):
    with FakeGemini(api_key="eval-key") as fake:
        monkeypatch.setenv("GEMINI_API_KEY", "eval-key")
        monkeypatch.setenv("GEMINI_BASE_URL", fake.base_url)
        metrics = run(tmp_path, capsys)
        embeds = [r for r in fake.requests if r.method_name == "batchEmbedContents"]
    assert metrics["hit@5"] == 1.0
    assert any(r.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY" for r in embeds)
