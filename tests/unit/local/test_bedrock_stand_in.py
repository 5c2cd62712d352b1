"""The local stand-in model answers Converse deterministically, and says it is a stand-in."""

from __future__ import annotations

import json

from local.bedrock import answer, fill, summarize


def converse(prompt: str, system: str = "", max_tokens: int = 512) -> dict:
    request: dict = {
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": max_tokens},
    }
    if system:
        request["system"] = [{"text": system}]
    return answer(request)


def text_of(response: dict) -> str:
    return response["output"]["message"]["content"][0]["text"]


def test_a_text_answer_is_the_prompts_last_paragraphs_first_two_sentences() -> None:
    response = converse("Summarize this.\n\nOne thing happened. Then another! And a third? A fourth.")
    assert text_of(response) == "One thing happened. Then another!"
    assert response["stopReason"] == "end_turn"
    assert response["usage"]["inputTokens"] > 0 and response["usage"]["outputTokens"] > 0


def test_the_same_request_gets_the_same_answer() -> None:
    assert converse("Alpha. Beta. Gamma.") == converse("Alpha. Beta. Gamma.")


def test_a_long_answer_stops_at_max_tokens() -> None:
    response = converse("word " * 400 + ".", max_tokens=5)
    assert response["stopReason"] == "max_tokens"
    assert len(text_of(response)) == 20


def test_a_json_answer_fills_the_schema_choosing_enums_by_mentions() -> None:
    schema = {
        "type": "object",
        "properties": {
            "topic": {"enum": ["serverless", "databases"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    system = f"Answer with one JSON value only, no prose. It must match this JSON Schema: {json.dumps(schema)}"
    value = json.loads(text_of(converse("Databases, databases and one serverless thing.", system)))
    assert value["topic"] == "databases"
    assert 1 <= value["score"] <= 5
    assert value["ok"] is True
    assert value["tags"] == ["Databases, databases and one serverless thing."]


def test_fill_and_summarize_handle_edge_cases() -> None:
    assert fill({"const": 3}, "", "") == 3
    assert fill({"type": ["null", "number"]}, "a b", "") == 2.0
    assert summarize("", 10) == ""
