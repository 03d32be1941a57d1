"""The answer benchmark runs questions through the chat path and checks what readers would read."""

import json

from bench.eval_answers import main
from tests.conftest import FIXTURE_BOOK

REAL = [
    {
        "id": "q1",
        "question": "How often should I water tomatoes?",
        "expected_files": ["guides/watering.md"],
        "key_facts": ["two or three times a week", "pruning shears"],
    },
    {
        "id": "q2",
        "question": "When do seedlings go outside after frost?",
        "expected_files": ["api/configuration.mdx"],
    },
]
OFF_TOPIC = [
    {"id": "o1", "question": "What is the stock price of Apple?"},
    {"id": "o2", "question": "Give me a pancake recipe."},
]


def test_keyword_run_prints_a_table_and_the_metrics(tmp_path, capsys):
    real, off = tmp_path / "real.jsonl", tmp_path / "off.jsonl"
    real.write_text("\n".join(json.dumps(q) for q in REAL))
    off.write_text("\n".join(json.dumps(q) for q in OFF_TOPIC))
    argv = [
        "--docs",
        str(FIXTURE_BOOK),
        "--questions",
        str(real),
        "--offtopic",
        str(off),
        "--site-url",
        "",
        "--route-base-path",
        "/",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| mode | real | offtopic | markdown | broken")
    metrics = json.loads(out[-1])["keyword"]
    assert metrics["real"] == 2 and metrics["offtopic"] == 2
    assert metrics["real_refused"] == 0 and metrics["offtopic_refused"] == 1.0
    assert metrics["gold_cited"] == 1.0  # each answer cites the page that answers it
    for problem in ("markdown", "broken", "uncited_sources"):
        assert 0 <= metrics[problem] <= 2  # counted over the two answered questions
    # q1's answer says how often, not what the book never says: one of its two key facts held.
    assert metrics["keyfacts"] == 1 and metrics["all_facts"] == 0.0 and metrics["facts_share"] == 0.5
    assert metrics["follow_ups"] == 2 and metrics["follow_up_repeats"] == 0
