"""Strict JSON intake: what is refused, with which error and where, and that nothing recurses."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statemachine.errors import JsonInputError, LimitError
from statemachine.jsonlimits import MAX_INTEGER_DIGITS, MAX_JSON_DEPTH, MAX_OUTPUT_DEPTH, check, loads, valid_text


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_ordinary_json_parses_to_the_same_value() -> None:
    text = '{"a": [1, -2.5, "é", "\\ud83d\\ude00", true, null, {"b": 1e300}], "n": -0}'
    assert loads(text) == {"a": [1, -2.5, "é", "\U0001f600", True, None, {"b": 1e300}], "n": 0}


def test_depth_up_to_the_limit_is_accepted_and_one_more_is_a_limit_error() -> None:
    assert loads(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(LimitError, match=f"nest at most {MAX_JSON_DEPTH} deep") as over:
        loads(nested(MAX_JSON_DEPTH + 1))
    assert over.value.status == 422


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_depth_beyond_the_parsers_recursion_limit_is_the_same_limit_error(depth: int) -> None:
    with pytest.raises(LimitError, match="objects and lists nest at most"):
        loads(nested(depth))


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinities_are_not_json(token: str) -> None:
    with pytest.raises(JsonInputError, match=f"{token} is not a JSON number"):
        loads(f'{{"x": {token}}}')


@pytest.mark.parametrize("text", ["1e400", "-1e400", "1" + "0" * 400 + ".0"])
def test_numbers_beyond_a_double_are_limit_errors(text: str) -> None:
    with pytest.raises(LimitError, match="out of range; numbers must fit a 64-bit float"):
        loads(f"[{text}]")


def test_integers_have_a_digit_limit_below_pythons_own() -> None:
    assert loads("-" + "9" * MAX_INTEGER_DIGITS) == -int("9" * MAX_INTEGER_DIGITS)
    with pytest.raises(LimitError, match=f"an integer of 5000 digits; integers have at most {MAX_INTEGER_DIGITS}"):
        loads("9" * 5000)


@pytest.mark.parametrize(
    ("text", "where"),
    [('["\\ud800"]', "[0]"), ('{"k": {"x": "a\\udfff"}}', "k.x"), ('{"\\udc00": 1}', "a key")],
)
def test_lone_surrogates_are_refused_with_their_place(text: str, where: str) -> None:
    with pytest.raises(JsonInputError, match="strings must be valid Unicode") as refused:
        loads(text)
    assert refused.value.details[0]["loc"] == where


def test_syntax_errors_name_line_and_column() -> None:
    with pytest.raises(JsonInputError, match=r"not valid JSON: Expecting value \(line 2, column 6\)"):
        loads("[1,\n  2, ]")


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({"a": float("nan")}, LimitError, "at a is not finite"),
        ([10**MAX_INTEGER_DIGITS], LimitError, f"at \\[0\\] has more than {MAX_INTEGER_DIGITS} digits"),
        ({"s": "\udc80"}, JsonInputError, "lone surrogate"),
    ],
)
def test_check_applies_the_same_limits_to_python_values(value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check(value)


def test_check_walks_a_value_far_deeper_than_the_recursion_limit_without_recursing() -> None:
    value: Any = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(LimitError, match="nested deeper than 64"):
        check(value)


@pytest.mark.parametrize(
    ("text", "valid"),
    [("plain", "plain"), ("bad \ud800 text", "bad \ufffd text"), ("\ud83d\ude00 joined", "\U0001f600 joined")],
)
def test_valid_text_replaces_each_lone_surrogate_with_one_replacement_character(text: str, valid: str) -> None:
    assert valid_text(text) == valid
    valid.encode("utf-8")


def test_check_takes_a_deeper_limit_for_outputs_and_names_it() -> None:
    value: Any = 1
    for _ in range(MAX_OUTPUT_DEPTH):
        value = [value]
    check(value, max_depth=MAX_OUTPUT_DEPTH)
    with pytest.raises(LimitError, match=f"nest at most {MAX_OUTPUT_DEPTH} deep"):
        check([value], "output", max_depth=MAX_OUTPUT_DEPTH)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**120), 10**120),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, depth=st.integers(0, 200), wrap=st.sampled_from(["[", '{"k":']))
def test_any_json_text_parses_as_json_does_or_is_refused_with_a_named_limit(value: Any, depth: int, wrap: str) -> None:
    # GIVEN generated JSON, wrapped up to 200 levels deep, with integers well past the digit limit
    close = "]" if wrap == "[" else "}"
    text = wrap * depth + json.dumps(value) + close * depth
    # WHEN it is read strictly
    try:
        parsed = loads(text)
    except LimitError as exc:
        # THEN a refusal names the depth or number limit
        assert "nest at most" in exc.message or "digits" in exc.message, exc.message
        return
    # THEN what is accepted is exactly what json reads
    assert parsed == json.loads(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet='[]{}":,0123456789.eE+-tnulfaseINaNy\\ud800 ', max_size=200))
def test_any_text_is_json_or_a_json_input_or_limit_error(text: str) -> None:
    with contextlib.suppress(JsonInputError, LimitError):
        loads(text)
