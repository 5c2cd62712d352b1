"""util.echo, util.sleep and util.fail: the tools the walking skeleton and the retry tests stand on."""

from __future__ import annotations

import time

import pytest

from functions.errors import ToolError
from functions.executor.tools import registry
from functions.executor.tools.base import InvalidParams, ToolContext


def test_echo_returns_its_params_unchanged() -> None:
    """GIVEN any JSON object WHEN echoed THEN the output is the same object."""
    params = {"value": {"nested": [1, 2.5, None, "x"]}, "flag": True}
    assert registry.get("util.echo").invoke(params, ToolContext()) == params


def test_echo_of_nothing_is_an_empty_object() -> None:
    """GIVEN no params WHEN echoed THEN the output is {} (outputs are always objects)."""
    assert registry.get("util.echo").invoke({}, ToolContext()) == {}


def test_sleep_sleeps_fractions_of_a_second_and_logs() -> None:
    """GIVEN 0.05 seconds WHEN run THEN it returns after sleeping and says so in the log."""
    lines: list[str] = []
    start = time.monotonic()
    out = registry.get("util.sleep").invoke({"seconds": 0.05}, ToolContext(log=lines.append))
    assert time.monotonic() - start >= 0.05
    assert out == {"slept_seconds": 0.05}
    assert lines == ["sleeping 0.05s"]


@pytest.mark.parametrize("seconds", [-0.1, 901, "x"])
def test_sleep_is_bounded(seconds: object) -> None:
    """GIVEN a negative, too long or non-numeric duration WHEN run THEN InvalidParams, no sleep."""
    with pytest.raises(InvalidParams, match=r"^util\.sleep: invalid params: seconds: Input should be"):
        registry.get("util.sleep").invoke({"seconds": seconds}, ToolContext())


def test_fail_fails_the_first_attempts_with_the_named_error_then_succeeds() -> None:
    """GIVEN failures=2 WHEN attempts 1, 2, 3 run THEN 1 and 2 raise the named code, 3 returns the output."""
    tool = registry.get("util.fail")
    params = {"failures": 2, "error": "Flaky.Upstream", "message": "upstream hiccup", "output": {"ok": True}}
    for attempt in (1, 2):
        with pytest.raises(ToolError) as info:
            tool.invoke(params, ToolContext(attempt=attempt))
        assert info.value.code == "Flaky.Upstream"
        assert "upstream hiccup" in str(info.value)
        assert f"attempt {attempt} of 2" in str(info.value)
    assert tool.invoke(params, ToolContext(attempt=3)) == {"ok": True}


def test_fail_defaults_report_the_succeeding_attempt() -> None:
    """GIVEN default params (one failure) WHEN the second attempt runs THEN the output names that attempt."""
    tool = registry.get("util.fail")
    with pytest.raises(ToolError) as info:
        tool.invoke({}, ToolContext(attempt=1))
    assert info.value.code == "InjectedFailure"
    assert tool.invoke({}, ToolContext(attempt=2)) == {"attempt": 2}


def test_fail_with_a_large_count_always_fails() -> None:
    """GIVEN failures larger than any retry policy WHEN attempt 10 runs THEN it still fails."""
    with pytest.raises(ToolError, match=r"attempt 10 of 1000 failing") as info:
        registry.get("util.fail").invoke({"failures": 1000, "error": "Always"}, ToolContext(attempt=10))
    assert info.value.code == "Always"


@pytest.mark.parametrize("code", ["States.Timeout", "States.ALL", "has space", "", "9lives"])
def test_fail_refuses_error_names_step_functions_reserves_or_cannot_match(code: str) -> None:
    """GIVEN a reserved or malformed error name WHEN validated THEN InvalidParams."""
    with pytest.raises(InvalidParams, match=r"^util\.fail: invalid params: error: "):
        registry.get("util.fail").invoke({"error": code}, ToolContext())
