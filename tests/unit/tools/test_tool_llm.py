"""``llm.converse`` without AWS: its params (model ids, schemas), the JSON answer checks, and the price table."""

from __future__ import annotations

import json
from datetime import date

import pytest

from functions.executor.tools import _models, llm_converse
from functions.executor.tools.base import InvalidParams
from functions.executor.tools.registry import get


def test_the_price_table_states_its_date_and_prices_every_model() -> None:
    table = _models.price_table()
    assert date.fromisoformat(table["as_of"]) <= date.today()
    assert table["default_model_id"] in table["models"]
    for model, prices in table["models"].items():
        assert prices["input_per_1k"] > 0 and prices["output_per_1k"] >= prices["input_per_1k"], model


def test_cost_is_priced_per_thousand_tokens() -> None:
    assert _models.cost_usd("amazon.nova-lite-v1:0", 2000, 1000) == pytest.approx(2 * 0.00006 + 0.00024)
    assert _models.cost_usd("not.in-the-table", 2000, 1000) == 0.0


def test_the_allowed_models_are_the_table_narrowed_by_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the stack allows two models, one of them unknown to the price table
    monkeypatch.setenv("STEPGRAPH_MODEL_IDS", "amazon.nova-micro-v1:0, acme.unpriced-v1")
    # THEN only the priced one may be named
    assert _models.model_ids() == ["amazon.nova-micro-v1:0"]
    tool = get("llm.converse")
    with pytest.raises(InvalidParams, match=r"unknown model id 'amazon.nova-pro-v1:0'"):
        tool.parse_params({"prompt": "hi", "model_id": "amazon.nova-pro-v1:0"})


def test_params_default_the_model_and_refuse_bad_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPGRAPH_DEFAULT_MODEL_ID", "amazon.nova-micro-v1:0")
    tool = get("llm.converse")
    assert tool.parse_params({"prompt": "hi"}).model_id == "amazon.nova-micro-v1:0"  # type: ignore[attr-defined]
    with pytest.raises(InvalidParams, match="not a valid JSON Schema at type"):
        tool.parse_params({"prompt": "hi", "output": "json", "schema": {"type": "strnig"}})
    with pytest.raises(InvalidParams, match='schema applies to output "json" only'):
        tool.parse_params({"prompt": "hi", "schema": {"type": "object"}})
    with pytest.raises(InvalidParams, match="prompt"):
        tool.parse_params({"prompt": ""})


def test_a_json_answer_is_asked_for_in_the_system_prompt_with_its_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    params = get("llm.converse").parse_params({"prompt": "p", "system": "Be kind.", "output": "json", "schema": schema})
    request = llm_converse._request(params)  # type: ignore[arg-type]
    (system,) = request["system"]
    assert system["text"].startswith("Be kind.\n\nAnswer with one JSON value only")
    assert json.dumps(schema, separators=(",", ":")) in system["text"]
    assert request["messages"] == [{"role": "user", "content": [{"text": "p"}]}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Sure! Here it is: {", "the model's answer is not JSON"),
        ('{"a": "one"}', "breaks the schema: a: 'one' is not of type 'integer'"),
    ],
)
def test_a_bad_json_answer_fails_with_bad_model_output(text: str, message: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    with pytest.raises(llm_converse.BadModelOutput, match=message) as caught:
        llm_converse._parse_json(text, schema)
    assert caught.value.code == "BadModelOutput"


def test_an_answer_nested_deeper_than_the_parser_goes_is_bad_model_output() -> None:
    with pytest.raises(llm_converse.BadModelOutput, match="nests too deep"):
        llm_converse._parse_json("[" * 5000 + "]" * 5000, None)


def test_a_fenced_json_answer_is_parsed() -> None:
    assert llm_converse._parse_json('```json\n{"a": 1}\n```', {"type": "object"}) == {"a": 1}
