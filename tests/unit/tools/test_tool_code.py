"""The code-review agent's steps (code.*) on real Python source: functions, complexity, issues, fixes, score."""

from __future__ import annotations

import ast
import textwrap
from typing import Any

import pytest

from functions.errors import ToolError
from functions.executor.tools import registry
from functions.executor.tools.base import ToolContext

CART = textwrap.dedent(
    '''\
    """Shopping cart totals."""

    import math


    class Cart:
        def __init__(self, items):
            self.items = items

        def total(self, tax):
            # TODO: handle discounts
            s = 0
            for item in self.items:
                if item.price > 0:
                    if item.qty > 0:
                        if item.taxable:
                            if tax:
                                s += item.price * item.qty * 1.2
                            else:
                                s += item.price * item.qty
            return s


    async def fetch(url, *args, timeout=3, **kw):
        """Fetch a page."""

        def inner():
            return url

        return inner()


    def classify(n):
        """Sort a number into a bucket."""
        if n < 0 and n > -100 or n == 7:
            return "neg"
        elif n < 10:
            return "small"
        elif n < 1000:
            return [x for x in range(n) if x % 3]
        return "a very long line that goes on and on and on and on and on and on and on and on and on and on and on"
    '''
)

# The same module after a reviewer followed every suggestion.
CART_FIXED = textwrap.dedent(
    '''\
    """Shopping cart totals."""

    TAX_RATE = 1.2
    SMALL, LARGE, LUCKY, FLOOR = 10, 1000, 7, -100
    STEP = 3


    class Cart:
        """A cart of priced items."""

        def __init__(self, items):
            """Keep the items."""
            self.items = items

        def total(self, tax):
            """Sum price times quantity, with tax on taxable items."""
            return sum(self._line(item, tax) for item in self.items if item.price > 0 and item.qty > 0)

        def _line(self, item, tax):
            """One item's amount."""
            rate = TAX_RATE if tax and item.taxable else 1
            return item.price * item.qty * rate


    async def fetch(url, *args, timeout=STEP, **kw):
        """Fetch a page."""

        def inner():
            """The url."""
            return url

        return inner()


    def classify(n):
        """Sort a number into a bucket."""
        if FLOOR < n < 0 or n == LUCKY:
            return "neg"
        if n < SMALL:
            return "small"
        if n < LARGE:
            return [x for x in range(n) if x % STEP]
        return "large"
    '''
)


def invoke(tool: str, params: dict[str, Any]) -> dict[str, Any]:
    return registry.get(tool).invoke(params, ToolContext())


def test_extract_functions_lists_functions_methods_and_nested_ones_with_lines() -> None:
    """GIVEN a module WHEN extracting THEN every function has its qualname, lines, arguments and docstring flag."""
    out = invoke("code.extract_functions", {"source": CART})
    rows = [(f["qualname"], f["lineno"], f["end_lineno"], f["is_method"], f["has_docstring"]) for f in out["functions"]]
    assert rows == [
        ("Cart.__init__", 7, 8, True, False),
        ("Cart.total", 10, 21, True, False),
        ("fetch", 24, 30, False, True),
        ("fetch.inner", 27, 28, False, False),
        ("classify", 33, 41, False, True),
    ]
    fetch = out["functions"][2]
    assert fetch["is_async"] and fetch["args"] == ["url", "*args", "timeout", "**kw"]
    assert (out["function_count"], out["class_count"], out["line_count"]) == (5, 1, 41)


def test_complexity_counts_decision_points_per_function() -> None:
    """GIVEN branches, loops, boolean operators and comprehensions WHEN measured THEN McCabe complexity per function."""
    out = invoke("code.complexity", {"source": CART})
    by_name = {f["qualname"]: (f["complexity"], f["rank"]) for f in out["functions"]}
    # total: for + 4 ifs; classify: if/elif/elif + and/or (2) + comprehension (for + if = 2)
    assert by_name == {
        "Cart.__init__": (1, "A"),
        "Cart.total": (6, "B"),
        "fetch": (1, "A"),
        "fetch.inner": (1, "A"),
        "classify": (8, "B"),
    }
    assert (out["max_complexity"], out["total_complexity"], out["average_complexity"]) == (8, 17, 3.4)


def test_detect_issues_finds_each_kind_at_its_line() -> None:
    """GIVEN the cart module WHEN reviewed THEN TODOs, nesting, magic numbers, docstrings, long lines are found."""
    out = invoke("code.detect_issues", {"source": CART})
    found = {(i["kind"], i["line"], i["function"]) for i in out["issues"]}
    assert found == {
        ("missing_docstring", 6, "Cart"),
        ("missing_docstring", 7, "Cart.__init__"),
        ("missing_docstring", 10, "Cart.total"),
        ("todo", 11, "Cart.total"),
        ("deep_nesting", 17, "Cart.total"),
        ("magic_number", 18, "Cart.total"),
        ("magic_number", 24, "fetch"),
        ("missing_docstring", 27, "fetch.inner"),
        ("magic_number", 35, "classify"),
        ("magic_number", 35, "classify"),
        ("magic_number", 37, "classify"),
        ("magic_number", 39, "classify"),
        ("magic_number", 40, "classify"),
        ("long_line", 41, "classify"),
    }
    assert out["issue_count"] == 14  # two magic numbers on line 35 (-100 and 7)
    assert out["counts"] == {"deep_nesting": 1, "long_line": 1, "magic_number": 7, "missing_docstring": 4, "todo": 1}
    assert [i["line"] for i in out["issues"]] == sorted(i["line"] for i in out["issues"])


def test_detect_issues_thresholds_are_params() -> None:
    """GIVEN looser limits WHEN reviewed THEN nesting and long lines pass and complexity over 5 is flagged."""
    out = invoke(
        "code.detect_issues",
        {"source": CART, "max_nesting": 5, "max_line_length": 200, "max_complexity": 5, "allowed_numbers": [0, 1]},
    )
    kinds = {(i["kind"], i["function"]) for i in out["issues"]}
    assert ("deep_nesting", "Cart.total") not in kinds
    assert not any(k == "long_line" for k, _ in kinds)
    assert {("high_complexity", "Cart.total"), ("high_complexity", "classify")} <= kinds


def test_suggest_orders_suggestions_and_applies_safe_fixes() -> None:
    """GIVEN detect_issues' output WHEN suggesting THEN the urgent come first and revised_source gains docstrings."""
    issues = invoke("code.detect_issues", {"source": CART})["issues"]
    out = invoke("code.suggest", {"source": CART, "issues": issues})
    assert out["suggestion_count"] == len(issues)
    assert out["suggestions"][0]["kind"] == "deep_nesting"
    assert out["suggestions"][0]["suggestion"].startswith("line 17: Flatten Cart.total")
    assert [s["priority"] for s in out["suggestions"]] == sorted(s["priority"] for s in out["suggestions"])
    revised = out["revised_source"]
    tree = ast.parse(revised)
    docs = {n.name: ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert docs["Cart"] == "A Cart." and docs["total"] == "Total." and docs["inner"] == "Inner."
    assert out["fixes_applied"] == [
        "added a docstring to Cart",
        "added a docstring to Cart.__init__",
        "added a docstring to Cart.total",
        "added a docstring to fetch.inner",
    ]
    # The docstring goes right under the header, above the TODO comment.
    assert '    def total(self, tax):\n        """Total."""\n        # TODO: handle discounts' in revised


def test_suggest_without_issues_detects_them_and_can_leave_source_alone() -> None:
    """GIVEN only source and apply_fixes false WHEN suggesting THEN suggestions come from detection, source as is."""
    out = invoke("code.suggest", {"source": CART, "apply_fixes": False})
    assert out["suggestion_count"] == 14
    assert out["revised_source"] == CART and out["fixes_applied"] == []


def test_score_rises_as_issues_are_fixed() -> None:
    """GIVEN the module, its auto-fixed version and the reviewed version WHEN scored THEN each scores higher."""
    before = invoke("code.score", {"source": CART})
    autofixed = invoke("code.score", {"source": invoke("code.suggest", {"source": CART})["revised_source"]})
    reviewed = invoke("code.score", {"source": CART_FIXED})
    assert 0 <= before["quality_score"] < autofixed["quality_score"] < reviewed["quality_score"] <= 10
    assert before["issue_count"] == 14 and autofixed["issue_count"] == 10
    assert reviewed == {**reviewed, "quality_score": 10.0, "grade": "A", "issue_count": 0, "penalty": 0.0}
    assert before["breakdown"]["missing_docstring"] == 4.0


def test_score_drops_with_each_issue_added() -> None:
    """GIVEN clean code WHEN one issue after another is introduced THEN the score falls strictly each time."""
    clean = 'def f(x):\n    """Double x."""\n    return x * 2\n'
    worse = clean.replace("x * 2", "x * 2  # TODO: triple")
    worst = worse.replace('    """Double x."""\n', "")
    scores = [invoke("code.score", {"source": s})["quality_score"] for s in (clean, worse, worst)]
    assert scores[0] == 10.0
    assert scores[0] > scores[1] > scores[2]


def test_code_tools_refuse_source_that_does_not_parse() -> None:
    """GIVEN broken Python WHEN any code.* step runs THEN InvalidSource names the line."""
    for tool in ("code.extract_functions", "code.complexity", "code.detect_issues", "code.suggest", "code.score"):
        with pytest.raises(ToolError, match="line 2") as info:
            invoke(tool, {"source": "x = 1\ndef f(:\n    pass\n"})
        assert info.value.code == "InvalidSource"


def test_score_of_a_fixed_source_is_exactly_its_formula() -> None:
    """GIVEN the cart module WHEN scored THEN quality_score is 10 * size / (size + penalty), to the hundredth."""
    out = invoke("code.score", {"source": CART})
    # size: 6 definitions (Cart, __init__, total, fetch, inner, classify) + 30 code lines / 40
    # penalty: 4 missing docstrings * 1 + 1 TODO * 0.5 + 1 deep nesting * 2 + 7 magic numbers * 0.5 + 1 long line * 0.25
    assert out["size"] == 6.75
    assert out["penalty"] == 10.25
    assert out["breakdown"] == {
        "deep_nesting": 2.0,
        "long_line": 0.25,
        "magic_number": 3.5,
        "missing_docstring": 4.0,
        "todo": 0.5,
    }
    assert out["quality_score"] == 3.97  # 67.5 / 17 = 3.9705...
    assert out["grade"] == "F"
    assert (out["function_count"], out["average_complexity"], out["max_complexity"]) == (5, 3.4, 8)


@pytest.mark.parametrize(
    ("size", "todos", "score", "grade"),
    [
        (10, 0, 10.0, "A"),
        (18, 4, 9.0, "A"),  # 180 / (18 + 2)
        (18, 5, 8.78, "B"),  # 180 / 20.5
        (10, 5, 8.0, "B"),  # 100 / (10 + 2.5)
        (10, 6, 7.69, "C"),  # 100 / 13
        (14, 12, 7.0, "C"),  # 140 / (14 + 6)
        (14, 13, 6.83, "D"),  # 140 / 20.5
        (10, 20, 5.0, "D"),  # 100 / (10 + 10)
        (10, 21, 4.88, "F"),  # 100 / 20.5
    ],
)
def test_grade_boundaries_are_9_8_7_and_5(size: int, todos: int, score: float, grade: str) -> None:
    """GIVEN a one-function module of a chosen size with a chosen number of TODOs (0.5 each) WHEN scored
    THEN the score lands on and beside every grade boundary (A >= 9, B >= 8, C >= 7, D >= 5, else F)."""
    lines = 40 * (size - 1)  # size = 1 function + code lines / 40
    body = "".join(f"    x = x  # TODO {i}\n" for i in range(todos))
    padding = "".join(f"    y{i} = x\n" for i in range(lines - 3 - todos))
    source = 'def f(x):\n    """Do it."""\n' + body + padding + "    return x\n"
    out = invoke("code.score", {"source": source})
    assert (out["size"], out["penalty"]) == (size, todos * 0.5)
    assert (out["quality_score"], out["grade"]) == (score, grade)
