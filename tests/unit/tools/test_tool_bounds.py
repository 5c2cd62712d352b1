"""Tools on hostile inputs: the shapes that used to take quadratic time give the same answers as small ones.

How long they take is shown by ``make bench`` (``bench/tools.py``: 1 MB sources, and the n vs 4n ratio);
these tests pin what the faster code computes.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from functions.executor.tools import _code, registry
from functions.executor.tools.text_analyze import _html_text


def invoke(tool: str, params: dict[str, Any]) -> dict[str, Any]:
    return registry.get(tool).invoke(params)


def test_issues_name_their_enclosing_function_among_thousands() -> None:
    # GIVEN 3,000 one-line functions with a magic number each, a nested function, and module-level code after
    body = "".join(f"def f{i}(): return {i + 3}\n" for i in range(3000))
    source = body + "def outer():\n    def inner():\n        return 42\n    return 43\nx = 44\n"

    # WHEN its issues are detected
    issues = invoke("code.detect_issues", {"source": source})["issues"]

    # THEN each magic number names the innermost function around it, and module code names none
    magic = {i["line"]: i["function"] for i in issues if i["kind"] == "magic_number"}
    assert magic[1] == "f0" and magic[3000] == "f2999"
    assert magic[3003] == "outer.inner" and magic[3004] == "outer" and magic[3005] is None


def test_suggest_inserts_docstrings_after_multi_line_headers_and_comments() -> None:
    # GIVEN headers that span lines, hold colons in annotations, defaults and comments, and one continuation
    source = (
        "def a(x: int = (lambda: 1)(),  # odd: comment\n"
        "      y: dict[str, int] | None = None,\n"
        ") -> 'x:y':  # trailing: comment\n"
        "    return x\n"
        "class B(\n"
        "    object,  # base: here\n"
        "):\n"
        "    x = 1\n"
        "def c(): \\\n"
        "    return 1\n"
        "def d():\r\n"
        "\treturn 2\r\n"
    )

    # WHEN code.suggest applies its fixes
    out = invoke("code.suggest", {"source": source})
    revised = out["revised_source"]

    # THEN the revised source parses, a and B and d got their docstrings, c (continued header) was left alone
    tree = ast.parse(revised)
    docs = {n.name: ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert docs == {"a": "A.", "B": "A B.", "c": None, "d": "D."}
    assert "\t" + '"""D."""' in revised


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<a " * 5000, "<a " * 5000),  # never closed: text, as a browser shows it
        ("<p>one</p><p>two &amp; three</p>", "\n\none\n\ntwo & three"),
        ("a < b and c > d", "a < b and c > d"),
        ("x<!-- hidden <p> -->y<!-- open", "xy"),
        ("<script>if (a < b) { x = '</p>' }</script>seen<STYLE>p{}</style >too", "seentoo"),
        ("<!DOCTYPE html><br/>line<?xml x?>", "\n\nline"),
        ("<div class='a>b'>text", "\n\nb'>text"),  # quotes are not parsed: the first > ends a tag
    ],
)
def test_html_is_stripped_in_one_pass(markup: str, expected: str) -> None:
    assert _html_text(markup) == expected


def test_text_analyze_counts_the_words_of_unclosed_tags() -> None:
    # GIVEN 24 KB of `<a ` (the shape that took 5 s) WHEN analyzed as HTML THEN each `a` is a word
    out = invoke("text.analyze", {"text": "<a " * 8000, "strip_html": True, "min_length": 1, "stopwords": False})
    assert out["word_count"] == 8000 and out["top_words"] == [["a", 8000]]


def test_the_analysis_of_a_deeply_nested_function_needs_no_recursion() -> None:
    # GIVEN a function nested 90 deep (Python allows 100 indentation levels) (the tools walk the tree without recursion)
    source = "".join("    " * i + f"def f{i}():\n" for i in range(90)) + "    " * 90 + "return 7\n"

    # WHEN it is analyzed THEN every level is a function with its full qualname
    facts = _code.analyze(ast.parse(source))
    assert len(facts.defs) == 90
    assert facts.defs[-1].qualname == ".".join(f"f{i}" for i in range(90))


@pytest.mark.parametrize(
    "source",
    ["x = " + "+".join(["1"] * 150_000) + "\n", "x = " + "-" * 200_000 + "1\n"],
    ids=["long-sum", "deep-unary"],
)
def test_a_source_too_deep_for_the_parser_is_invalid_source(source: str) -> None:
    # GIVEN an expression Python's parser cannot build (it recurses per level)
    # WHEN a code tool reads it THEN the error is InvalidSource naming why, not a crash
    for tool in ("code.detect_issues", "code.extract_functions"):
        with pytest.raises(_code.InvalidSource, match="nests too deeply"):
            invoke(tool, {"source": source})


NESTED_DEFINITIONS = """
import contextlib


class Outer:
    if True:
        def in_if(self): ...
    else:
        class Alt:
            def deep(self): ...
    try:
        def in_try(self): ...
    except ValueError:
        def in_except(self): ...
    finally:
        def in_finally(self): ...


def top():
    for _ in ():
        async def in_loop(): ...
    with contextlib.suppress(Exception):
        def in_with(): ...
    match 1:
        case 1:
            class InCase:
                def method(self): ...
    while False:
        def in_while(): ...
    else:
        def in_while_else(): ...
    handler = lambda: None  # noqa: E731 - a lambda is no definition
"""


def test_definitions_walk_only_statements_and_find_what_the_full_analysis_finds() -> None:
    # GIVEN definitions in every kind of block, in classes and functions
    # WHEN they are found by the statement walk and by the full analysis (separate trees: the analysis is cached)
    quick = _code.definitions(ast.parse(NESTED_DEFINITIONS))
    full = _code.analyze(ast.parse(NESTED_DEFINITIONS)).defs

    # THEN both list the same definitions, qualnames and methods, in source order
    def shape(defs: list[Any]) -> list[tuple[str, int, bool]]:
        return [(d.qualname, d.node.lineno, d.is_method) for d in defs]

    assert shape(quick) == shape(full)
    assert [q for q, _, _ in shape(quick)] == [
        "Outer",
        "Outer.in_if",
        "Outer.Alt",
        "Outer.Alt.deep",
        "Outer.in_try",
        "Outer.in_except",
        "Outer.in_finally",
        "top",
        "top.in_loop",
        "top.in_with",
        "top.InCase",
        "top.InCase.method",
        "top.in_while",
        "top.in_while_else",
    ]
    assert [d.is_method for d in quick][:3] == [False, True, False]


def test_code_tools_leave_the_garbage_collector_as_they_found_it() -> None:
    # GIVEN the collector on, and then off
    import gc

    tool = registry.get("code.score")
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            # WHEN a code tool runs (the collector is paused while it builds and walks the tree)
            tool.invoke({"source": "def f():\n    return 1\n"})
            # THEN the collector is back as it was
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
