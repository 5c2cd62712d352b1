"""The condition language: what compiles to which Choice rule, and what is rejected where."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statemachine.conditions import (
    MAX_CONDITION_CHARS,
    MAX_CONDITION_NESTING,
    MAX_CONDITION_TERMS,
    ConditionError,
    parse,
)
from statemachine.references import MAX_PATH_PARTS

A = "$.results.a.x"


def rule(text: str) -> object:
    return parse(text).choice_rule()


def guard(var: str, kind: str) -> list[dict[str, object]]:
    return [{"Variable": var, "IsPresent": True}, {"Variable": var, f"Is{kind}": True}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.x == 1", {"And": [*guard(A, "Numeric"), {"Variable": A, "NumericEquals": 1}]}),
        ("a.x >= 2.5", {"And": [*guard(A, "Numeric"), {"Variable": A, "NumericGreaterThanEquals": 2.5}]}),
        ("1 < a.x", {"And": [*guard(A, "Numeric"), {"Variable": A, "NumericGreaterThan": 1}]}),
        ("a.x == 'ok'", {"And": [*guard(A, "String"), {"Variable": A, "StringEquals": "ok"}]}),
        ("a.x < 'm'", {"And": [*guard(A, "String"), {"Variable": A, "StringLessThan": "m"}]}),
        ("a.x == True", {"And": [*guard(A, "Boolean"), {"Variable": A, "BooleanEquals": True}]}),
        ("a.x is None", {"And": [{"Variable": A, "IsPresent": True}, {"Variable": A, "IsNull": True}]}),
        ("a.x != 1", {"Not": {"And": [*guard(A, "Numeric"), {"Variable": A, "NumericEquals": 1}]}}),
        ("exists(a.x)", {"Variable": A, "IsPresent": True}),
        ("state.n == -3", {"And": [*guard("$.state.n", "Numeric"), {"Variable": "$.state.n", "NumericEquals": -3}]}),
        (
            "input.items[2].name == 'z'",
            {
                "And": [
                    *guard("$.input.items[2].name", "String"),
                    {"Variable": "$.input.items[2].name", "StringEquals": "z"},
                ]
            },
        ),
    ],
)
def test_comparisons_compile_to_guarded_rules(text: str, expected: object) -> None:
    assert rule(text) == expected


def test_in_a_literal_list_is_an_or_of_equalities() -> None:
    assert rule("a.x in [1, 'b']") == {
        "Or": [
            {"And": [*guard(A, "Numeric"), {"Variable": A, "NumericEquals": 1}]},
            {"And": [*guard(A, "String"), {"Variable": A, "StringEquals": "b"}]},
        ]
    }


def test_literal_in_path_is_a_substring_match_with_wildcards_escaped() -> None:
    assert rule("'a*b' in a.x") == {"And": [*guard(A, "String"), {"Variable": A, "StringMatches": "*a\\*b*"}]}


def test_boolean_operators_nest_and_flatten() -> None:
    out = rule("exists(a.x) and (state.n > 1 or not state.done)")
    assert out["And"][0] == {"Variable": A, "IsPresent": True}  # type: ignore[index]
    assert set(out["And"][1]) == {"Or"}  # type: ignore[index]
    assert set(out["And"][1]["Or"][1]) == {"Not"}  # type: ignore[index]


def test_chained_comparison_is_an_and() -> None:
    out = rule("0 < state.n < 10")
    n = "$.state.n"
    assert out == {
        "And": [
            *guard(n, "Numeric"),
            {"Variable": n, "NumericGreaterThan": 0},
            *guard(n, "Numeric"),
            {"Variable": n, "NumericLessThan": 10},
        ]
    }


def test_path_against_path_tries_each_type() -> None:
    out = rule("a.x == state.y")
    assert [r["And"][-1] for r in out["Or"]] == [  # type: ignore[index]
        {"Variable": A, "NumericEqualsPath": "$.state.y"},
        {"Variable": A, "StringEqualsPath": "$.state.y"},
        {"Variable": A, "BooleanEqualsPath": "$.state.y"},
    ]


def test_constant_conditions_fold() -> None:
    assert rule("1 == 1") is True
    assert rule("true and 2 > 3") is False
    assert rule("a.x == 1 or True") is True


def test_bare_path_is_truthy() -> None:
    out = rule("state.done")
    assert out["And"][0] == {"Variable": "$.state.done", "IsPresent": True}  # type: ignore[index]


def test_paths_and_nodes_are_listed() -> None:
    cond = parse("my-node.ok == true and state.n > fetch.json.count")
    assert cond.nodes() == {"my-node", "fetch"}
    assert [p.text for p in cond.paths] == ["my-node.ok", "state.n", "fetch.json.count"]


@pytest.mark.parametrize(
    ("text", "message", "col"),
    [
        ("len(a.x) > 1", "function calls are not allowed", 1),
        ("a.x + 1 > 2", "arithmetic is not allowed", 1),
        ("state.n > 1 and [x for x in a.y]", "a comprehension is not allowed", 17),
        ("'abc'.upper == 1", "this literal cannot start a path", 1),
        ("(lambda: 1) == 1", "a lambda is not allowed", 2),
        ("a.x ==", "not a valid expression", None),  # where Python puts it depends on its version
        ("a.x in a.y", "only tests a literal substring", 1),
        ("a.x < True", "compares numbers or strings", 7),
        ("item.x == 1", "only available inside foreach", 1),
        ("a.x[-1] == 1", "negative indexes", 5),
        ("exists(a.x, a.y)", "exactly one path", 1),
        ("", "empty condition", 1),
    ],
)
def test_anything_outside_the_grammar_is_rejected_with_its_position(text: str, message: str, col: int | None) -> None:
    with pytest.raises(ConditionError, match=message) as info:
        parse(text)
    assert info.value.line == 1
    if col is not None:
        assert info.value.col == col


def test_dunder_names_are_rejected() -> None:
    with pytest.raises(ConditionError, match="names starting with '__'"):
        parse("a.__class__ == 1")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab.[]()0123'\" =<>!andortinxsu_-")), max_size=40))
def test_any_text_either_parses_to_rules_or_fails_with_a_condition_error(text: str) -> None:
    # GIVEN arbitrary text WHEN parsed THEN it compiles to a rule/constant or raises ConditionError only
    try:
        cond = parse(text)
    except ConditionError:
        return
    assert isinstance(cond.choice_rule(), dict | bool)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" and ".join(["input.x"] * 10_000), f"characters long; a condition has at most {MAX_CONDITION_CHARS}"),
        ("not " * 1000 + "input.x", "characters long"),
        (" or ".join(["input.x == 1"] * (MAX_CONDITION_TERMS + 1)), f"more than {MAX_CONDITION_TERMS} comparisons"),
        ("not " * (MAX_CONDITION_NESTING + 1) + "input.x", f"nested more than {MAX_CONDITION_NESTING} deep"),
        ("(" * 40 + "input.x" + " and input.y)" * 40, f"nested more than {MAX_CONDITION_NESTING} deep"),
        ("input" + ".a" * (MAX_PATH_PARTS + 1) + " == 1", f"a path has at most {MAX_PATH_PARTS} parts"),
        ("input" + "[0]" * 600, f"a path has at most {MAX_PATH_PARTS} parts (this one has 600)"),
        ("(" * 300 + "input.x" + ")" * 300, "too many nested parentheses"),
    ],
    ids=["10000-and", "1000-not", "terms", "nesting", "nested-parens", "path-parts", "path-index", "parens"],
)
def test_pathological_conditions_are_condition_errors_naming_the_limit(text: str, message: str) -> None:
    with pytest.raises(ConditionError, match=re.escape(message)):
        parse(text)


def test_conditions_at_the_limits_parse() -> None:
    assert parse(" or ".join(["input.x == 1"] * MAX_CONDITION_TERMS)).choice_rule()
    assert parse("not " * MAX_CONDITION_NESTING + "input.x").choice_rule()
    assert parse("input" + ".a" * MAX_PATH_PARTS + " == 1").paths[0].parts == ("a",) * MAX_PATH_PARTS
