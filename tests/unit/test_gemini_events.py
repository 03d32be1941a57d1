"""What the raw stream reader takes from one Gemini SSE event (pure logic; the wire is in
tests/integration/test_gemini_raw_stream.py)."""

import pytest
from google.genai import errors

from app.services.providers.gemini_stream import StreamPiece, parse_event


def test_text_of_the_first_candidate_without_thoughts_with_finish_reason_and_usage():
    event = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Deploy "},
                        {"text": "with make [1]."},
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            },
            {"content": {"parts": [{"text": "another candidate"}]}, "index": 1},
        ],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4, "totalTokenCount": 16},
    }
    assert parse_event(event, None) == StreamPiece("Deploy with make [1].", (12, 4), "STOP")


def test_a_blocked_prompt_gives_no_text():
    assert parse_event({"promptFeedback": {"blockReason": "SAFETY"}}, None) == StreamPiece("", None, None)


@pytest.mark.parametrize(
    ("code", "kind"), [(503, errors.ServerError), (429, errors.ClientError), (None, errors.ServerError)]
)
def test_an_error_event_raises_the_sdks_error(code, kind):
    with pytest.raises(kind) as info:
        parse_event({"error": {"code": code, "message": "overloaded", "status": "UNAVAILABLE"}}, None)
    assert info.value.code == (code or 500)
