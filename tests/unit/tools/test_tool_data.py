"""json.pick, transform, text.analyze and chart.bar on real inputs, and the analyze -> chart composition."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
import pytest

from functions.executor.tools import registry
from functions.executor.tools.base import InvalidParams, ToolContext

GITHUB_REPO = {
    "full_name": "aws/aws-sam-cli",
    "stargazers_count": 6500,
    "owner": {"login": "aws", "type": "Organization"},
    "topics": ["aws", "serverless", "sam"],
    "releases": [
        {"tag": "v1.120.0", "draft": False, "assets": 3},
        {"tag": "v1.121.0-rc", "draft": True, "assets": 0},
        {"tag": "v1.121.0", "draft": False, "assets": 5},
    ],
}

ARTICLE = """Step Functions makes orchestration simple. We love how retries work: they are reliable and clear!
But debugging a failed state machine was painful. The console is not bad, though.

Is the cost worth it? Mostly yes. Serverless orchestration with Step Functions is a great fit for agents."""


def invoke(tool: str, params: dict[str, Any]) -> dict[str, Any]:
    return registry.get(tool).invoke(params, ToolContext())


def test_json_pick_selects_named_fields_with_jmespath() -> None:
    """GIVEN an API response WHEN picking fields THEN each name holds what its expression selects, null if nothing."""
    out = invoke(
        "json.pick",
        {
            "data": GITHUB_REPO,
            "fields": {
                "name": "full_name",
                "owner": "owner.login",
                "stars": "stargazers_count",
                "published": "releases[?!draft].tag",
                "assets": "sum(releases[].assets)",
                "license": "license.spdx_id",
            },
        },
    )
    assert out == {
        "name": "aws/aws-sam-cli",
        "owner": "aws",
        "stars": 6500,
        "published": ["v1.120.0", "v1.121.0"],
        "assets": 8,
        "license": None,
    }


def test_json_pick_rejects_a_broken_expression_when_validating() -> None:
    """GIVEN an expression that does not parse WHEN the params are validated THEN the error names the field."""
    model = registry.params_model("json.pick")
    assert model is not None
    with pytest.raises(ValueError, match=r"fields\.bad: invalid JMESPath"):
        model.model_validate({"data": {}, "fields": {"ok": "a.b", "bad": "releases[?"}})
    with pytest.raises(InvalidParams, match="fields"):
        invoke("json.pick", {"data": {}, "fields": {}})


def test_transform_reshapes_filters_and_sorts() -> None:
    """GIVEN a list of records WHEN one expression filters, sorts and projects THEN result is the new value."""
    out = invoke(
        "transform",
        {
            "value": GITHUB_REPO["releases"],
            "expression": "sort_by([?!draft], &assets)[].{tag: tag, n: assets}",
        },
    )
    assert out == {"result": [{"tag": "v1.120.0", "n": 3}, {"tag": "v1.121.0", "n": 5}]}


def test_transform_type_error_is_a_tool_error_step_functions_can_match() -> None:
    """GIVEN a function applied to the wrong type WHEN run THEN ExpressionError says what went wrong."""
    from functions.errors import ToolError

    with pytest.raises(ToolError, match="length") as info:
        invoke("transform", {"value": 5, "expression": "length(@)"})
    assert info.value.code == "ExpressionError"


@pytest.mark.parametrize("expression", ["(" * 3000 + "a" + ")" * 3000, "!" * 20_000 + "a", "a" + "[?b]" * 5000])
def test_an_expression_nested_past_the_parser_is_refused_when_validating(expression: str) -> None:
    """GIVEN an expression thousands deep (jmespath parses recursively) THEN validation refuses it by name."""
    model = registry.params_model("transform")
    assert model is not None
    with pytest.raises(ValueError, match="nests too deeply"):
        model.model_validate({"value": {}, "expression": expression})


def test_an_expression_too_deep_to_evaluate_is_an_expression_error() -> None:
    """GIVEN 20,000 pipes (they parse) WHEN run THEN ExpressionError, not a crash."""
    from functions.errors import ToolError

    with pytest.raises(ToolError, match="nests too deeply") as info:
        invoke("transform", {"value": {"a": 1}, "expression": " | ".join(["a"] * 20_000)})
    assert info.value.code == "ExpressionError"


def test_text_analyze_counts_words_sentences_and_top_words() -> None:
    """GIVEN a short article WHEN analyzed THEN counts, top words (ties alphabetical) and sentiment are exact."""
    out = invoke("text.analyze", {"text": ARTICLE, "top": 4})
    assert out["word_count"] == 47
    assert out["sentence_count"] == 7
    assert out["top_words"] == [["functions", 2], ["orchestration", 2], ["step", 2], ["agents", 1]]
    assert out["average_sentence_words"] == round(47 / 7, 2)
    # love, reliable, clear, great, "not bad" -> +5; failed, painful -> -2
    assert out["sentiment"] == {"score": round(3 / 7, 4), "label": "positive", "positive": 5, "negative": 2}


def test_text_analyze_is_deterministic_and_negation_flips_sentiment() -> None:
    """GIVEN the same text twice, and a negated text WHEN analyzed THEN same output; 'not good' is negative."""
    assert invoke("text.analyze", {"text": ARTICLE}) == invoke("text.analyze", {"text": ARTICLE})
    out = invoke("text.analyze", {"text": "This is not good. It isn't helpful."})
    assert out["sentiment"]["label"] == "negative"
    assert invoke("text.analyze", {"text": "   "})["sentiment"] == {
        "score": 0.0,
        "label": "neutral",
        "positive": 0,
        "negative": 0,
    }


def test_text_analyze_strips_html_when_asked() -> None:
    """GIVEN an HTML page WHEN strip_html THEN scripts and styles are not words and tags end sentences."""
    page = (
        "<html><head><style>body{color:red}</style><script>var failure = 1;</script></head>"
        "<body><h1>Release notes</h1><p>Faster retries &amp; clearer errors</p></body></html>"
    )
    out = invoke("text.analyze", {"text": page, "strip_html": True})
    assert out["word_count"] == 6
    assert out["sentence_count"] == 2
    assert "failure" not in dict(out["top_words"])
    assert "body" in dict(invoke("text.analyze", {"text": page})["top_words"])


@lru_cache(maxsize=1)
def vega_lite_v5_schema() -> dict[str, Any]:
    path = resources.files("altair") / "vegalite" / "v5" / "schema" / "vega-lite-schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def assert_valid_vega_lite(spec: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(vega_lite_v5_schema()).validate(spec)
    assert spec["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"


@pytest.mark.parametrize(
    "series",
    [
        [{"label": "b", "value": 2}, {"label": "a", "value": 5}],
        {"b": 2, "a": 5},
        [["b", 2], ["a", 5]],
    ],
    ids=["points", "mapping", "pairs"],
)
def test_chart_bar_accepts_every_series_form_and_emits_valid_vega_lite(series: Any) -> None:
    """GIVEN a series in each accepted form WHEN charted THEN the same valid Vega-Lite v5 bar spec results."""
    spec = invoke("chart.bar", {"series": series, "title": "Counts"})
    assert_valid_vega_lite(spec)
    assert spec["mark"]["type"] == "bar"
    assert spec["data"]["values"] == [{"label": "b", "value": 2.0}, {"label": "a", "value": 5.0}]
    assert spec["encoding"]["x"]["field"] == "label" and spec["encoding"]["y"]["field"] == "value"


def test_chart_bar_sorts_limits_and_turns_horizontal() -> None:
    """GIVEN sort, limit and horizontal WHEN charted THEN bars are ordered, cut and laid along x."""
    spec = invoke(
        "chart.bar",
        {"series": {"x": 1, "y": 3, "z": 2, "w": 3}, "sort": "descending", "limit": 3, "horizontal": True},
    )
    assert_valid_vega_lite(spec)
    assert [v["label"] for v in spec["data"]["values"]] == ["w", "y", "z"]
    assert spec["encoding"]["y"]["field"] == "label" and spec["encoding"]["x"]["type"] == "quantitative"


def test_chart_bar_rejects_non_numeric_values() -> None:
    """GIVEN a bar whose value is text WHEN validated THEN InvalidParams."""
    with pytest.raises(InvalidParams, match=r"^chart\.bar: invalid params: series"):
        invoke("chart.bar", {"series": [["a", "lots"]]})


def test_text_analyze_top_words_compose_into_chart_bar() -> None:
    """GIVEN text.analyze's output WHEN its top_words feed chart.bar (as an edge map would) THEN a valid chart."""
    analysis = invoke("text.analyze", {"text": ARTICLE, "top": 5})
    spec = invoke("chart.bar", {"series": analysis["top_words"], "title": "Top words", "x_title": "word"})
    assert_valid_vega_lite(spec)
    assert [(v["label"], v["value"]) for v in spec["data"]["values"]] == [
        (w, float(c)) for w, c in analysis["top_words"]
    ]
    # The output schema served by GET /tools says the same: top_words are [string, integer] pairs.
    schema = registry.describe("text.analyze")["output_schema"]["properties"]["top_words"]
    jsonschema.validate(analysis["top_words"], schema)
