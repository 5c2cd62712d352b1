"""The structural check every compiled definition passes: it catches broken targets, duplicate names and
unreachable states, in nested scopes too."""

from __future__ import annotations

import pytest

from statemachine.compiler import check_definition
from statemachine.errors import CompileError

PASS = {"Type": "Pass", "End": True}


def test_a_sound_definition_passes() -> None:
    check_definition({"StartAt": "a", "States": {"a": {"Type": "Pass", "Next": "b"}, "b": PASS}})


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"StartAt": "x", "States": {"a": PASS}}, "StartAt 'x' is not a state"),
        ({"StartAt": "a", "States": {"a": {"Type": "Pass", "Next": "zz"}}}, "target 'zz' is not a state"),
        ({"StartAt": "a", "States": {"a": PASS, "b": PASS}}, "$.b: unreachable"),
        ({"StartAt": "a", "States": {"a": {"Type": "Pass"}}}, "needs exactly one of Next or End"),
        ({"StartAt": "a", "States": {"a": {"Type": "Choice", "Choices": [], "Default": "a"}}}, "Choice without"),
        (
            {
                "StartAt": "p",
                "States": {
                    "p": {"Type": "Parallel", "End": True, "Branches": [{"StartAt": "p", "States": {"p": PASS}}]}
                },
            },
            "state name 'p' is used twice",
        ),
        (
            {
                "StartAt": "m",
                "States": {
                    "m": {
                        "Type": "Map",
                        "End": True,
                        "ItemProcessor": {"StartAt": "i", "States": {"i": {"Type": "Pass", "Next": "m"}}},
                    }
                },
            },
            "target 'm' is not a state of its",
        ),
    ],
)
def test_broken_definitions_are_refused_naming_the_problem(definition: dict[str, object], problem: str) -> None:
    with pytest.raises(CompileError) as info:
        check_definition(definition)
    assert problem in str(info.value)
