"""Schemas' patterns are matched by RE2: in linear time, whatever the pattern and the text."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from statemachine.schemas import check, pattern_problems, validator

CATASTROPHIC = "^(a+)+$"
"""Exponential for a backtracking engine on 'aaaa…!': Python's re would not finish on the text below."""
TEXT = "a" * 5000 + "!"


def messages(schema: dict[str, Any], value: Any) -> list[str]:
    return sorted(error.message for error in validator(schema).iter_errors(value))


def test_a_catastrophic_pattern_is_matched_at_once_and_reports_the_mismatch() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": CATASTROPHIC}}}
    assert messages(schema, {"x": TEXT}) == [f"{TEXT!r} does not match {CATASTROPHIC!r}"]
    assert messages(schema, {"x": "aaa"}) == []


def test_pattern_properties_and_additional_properties_use_the_same_matching() -> None:
    schema = {
        "type": "object",
        "patternProperties": {CATASTROPHIC: {"type": "integer"}, "^n_": {"type": "string"}},
        "additionalProperties": False,
    }
    assert messages(schema, {"aaa": 1, "n_1": "x"}) == []
    assert messages(schema, {"aaa": "one"}) == ["'one' is not of type 'integer'"]
    assert messages(schema, {TEXT: 1}) == [f"{TEXT!r} does not match any of the regexes: {CATASTROPHIC!r}, '^n_'"]
    closed = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
    assert messages(closed, {"a": 1, "b": 2, "c": 3}) == [
        "Additional properties are not allowed ('b', 'c' were unexpected)"
    ]


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^[a-z]+$", "abc", True),
        ("^\\d{3}$", "12", False),
        ("(?i)^ABC", "abcd", True),
        ("^\\u00e9$", "é", True),
        # as ECMA-262 (JSON Schema's regex dialect) reads them, where Python's re differs:
        ("^[a-z]+$", "abc\n", False),  # $ is the end of the text, not also the place before a final newline
        ("^\\d+$", "\u0661\u0662", False),  # \d is ASCII digits
    ],
)
def test_ordinary_patterns_match_as_json_schema_means(pattern: str, text: str, matches: bool) -> None:
    assert (messages({"pattern": pattern}, text) == []) is matches


def test_the_schemas_own_draft_or_the_one_asked_for_applies() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]}
    assert validator(schema).META_SCHEMA == Draft7Validator.META_SCHEMA
    asked = {"$schema": "http://json-schema.org/draft-07/schema#"}
    assert validator(asked, Draft202012Validator).META_SCHEMA == Draft202012Validator.META_SCHEMA


def test_patterns_re2_cannot_take_are_named_where_they_are_and_fail_validation_without_raising() -> None:
    schema = {
        "properties": {"x": {"pattern": "(?=a)b"}},
        "patternProperties": {"(a)\\1": {}},
        "examples": [{"pattern": "(?=data, not a schema)"}],
    }
    problems = pattern_problems(schema)
    assert len(problems) == 2
    assert any(p.startswith("/properties/x/pattern: pattern '(?=a)b' is not one RE2 takes") for p in problems)
    assert any(p.startswith("/patternProperties: pattern '(a)\\\\1' is not one RE2 takes") for p in problems)
    [message] = messages({"pattern": "(?=a)b"}, "ab")
    assert message.startswith("the schema's pattern '(?=a)b' is not one RE2 takes")
    assert message.endswith("invalid perl operator: (?=")


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^a": {}}, "unevaluatedProperties": False}
    assert pattern_problems(schema) == [
        "unevaluatedProperties beside patternProperties is not supported: its patterns would be matched by a "
        "backtracking engine"
    ]
    assert pattern_problems({"unevaluatedProperties": False, "properties": {"a": {"pattern": "^a"}}}) == []


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "integer", "minimum": "one"}, "not a valid JSON Schema at minimum"),
        ({"pattern": "(" * 3000 + ")" * 3000}, "nests too deeply to be read"),
        ({"pattern": "^(?!admin)"}, "not one RE2 takes"),
        ({"$ref": "https://example.com/schema.json"}, "points outside the schema"),
        ({"$ref": "#"}, "refers to itself without end"),
        ({"$ref": "#/$defs/missing"}, "points at nothing in the schema"),
        ({"properties": {"a": {"$ref": "#/nope"}}}, "'#/nope' at properties/a points at nothing"),
    ],
)
def test_a_schema_that_cannot_be_taken_is_a_value_error_saying_why(schema: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check(schema)


def test_a_schema_that_can_be_taken_passes_in_its_own_draft_or_the_one_asked_for() -> None:
    check({"type": "object", "properties": {"tags": {"type": "array", "items": {"pattern": "^[a-z]+$"}}}})
    check(
        {
            "$defs": {"n": {"$anchor": "n", "type": "integer"}},
            "properties": {"a": {"$ref": "#/$defs/n"}},
            "items": {"$ref": "#n"},
        }
    )
    check({"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]})
    check({"type": "object", "examples": [{"$ref": "#/data, not a reference", "pattern": "(?=data)"}]})
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        check({"items": [{"type": "string"}]}, Draft202012Validator)
