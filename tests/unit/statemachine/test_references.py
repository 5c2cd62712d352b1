"""References: parsing, listing and runtime resolution, as params and foreach use them."""

from __future__ import annotations

import re

import pytest

from statemachine.errors import ReferenceResolutionError
from statemachine.references import (
    MAX_PATH_PARTS,
    Path,
    ReferenceSyntaxError,
    get_field,
    parse_path,
    parse_template,
    referenced_nodes,
    resolve,
)

SCOPE = {
    "input": {"url": "http://x", "items": [1, 2, 3]},
    "state": {"score": 7},
    "results": {"fetch": {"status_code": 200, "json": {"rows": [{"name": "a"}, {"name": "b"}]}}, "opt": None},
}


def test_whole_reference_keeps_the_json_type() -> None:
    # GIVEN a param that is exactly one reference WHEN resolved THEN the value keeps its type
    assert resolve("{{ input.items }}", SCOPE) == [1, 2, 3]
    assert resolve("{{fetch.status_code}}", SCOPE) == 200
    assert resolve("{{ fetch.json.rows[1].name }}", SCOPE) == "b"
    assert resolve("{{ opt }}", SCOPE) is None


def test_interpolated_references_become_text() -> None:
    # GIVEN references inside a longer string WHEN resolved THEN they are interpolated as text/JSON
    assert resolve("code {{ fetch.status_code }} at {{ input.url }}", SCOPE) == "code 200 at http://x"
    assert resolve("rows={{ fetch.json.rows[0] }}", SCOPE) == 'rows={"name":"a"}'


def test_nested_params_are_resolved_everywhere() -> None:
    params = {"a": ["{{ state.score }}", {"b": "{{ input.url }}"}], "n": 3, "s": "plain"}
    assert resolve(params, SCOPE) == {"a": [7, {"b": "http://x"}], "n": 3, "s": "plain"}


def test_item_is_only_available_inside_foreach() -> None:
    assert resolve("{{ item.v }}", {**SCOPE, "item": {"v": 5}}) == 5
    with pytest.raises(ReferenceResolutionError, match="not available inside foreach"):
        resolve("{{ item }}", SCOPE)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ nope.x }}", "node 'nope' has no result"),
        ("{{ fetch.missing }}", "no field 'missing' in fetch"),
        ("{{ fetch.json.rows[5] }}", r"no index \[5\] in fetch.json.rows \(a list of 2\)"),
        ("{{ fetch.status_code.x }}", "no field 'x' in fetch.status_code"),
    ],
)
def test_missing_values_fail_with_a_clear_message(template: str, message: str) -> None:
    with pytest.raises(ReferenceResolutionError, match=message):
        resolve(template, SCOPE)


@pytest.mark.parametrize("text", ["{{ }}", "{{ a..b }}", "{{ 1abc }}", "{{ a[x] }}", "x {{ a", "{{ a b }}"])
def test_malformed_references_are_rejected_with_their_offset(text: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=r"^(malformed path|unclosed '\{\{')") as info:
        parse_template(text)
    assert info.value.offset == text.index("{{")


def test_paths_know_their_place_in_the_document() -> None:
    assert parse_path("fetch.json.rows[0]").jsonpath() == "$.results.fetch.json.rows[0]"
    assert parse_path("state.score").jsonpath() == "$.state.score"
    assert parse_path("my-node.x").root == "my-node"
    assert Path("input", ("a", 2)).text == "input.a[2]"


def test_referenced_nodes_lists_node_roots_only() -> None:
    params = {"a": "{{ fetch.x }} and {{ input.y }}", "b": ["{{ other }}"], "c": "{{ state.z }}"}
    assert referenced_nodes(params) == {"fetch", "other"}


def test_get_field_reads_dotted_paths_inside_an_output() -> None:
    out = {"a": {"b": [10, 20]}}
    assert get_field(out, "a.b[1]") == 20
    assert get_field(out, "") == out


def test_unclosed_braces_are_found_in_one_pass_at_the_first_unclosed_one() -> None:
    # 32,000 unclosed '{{' (quadratic for the old lazy regex scan): the first one is reported
    with pytest.raises(ReferenceSyntaxError, match=re.escape("unclosed '{{'")) as first:
        parse_template("{{" * 32_000)
    assert first.value.offset == 0
    with pytest.raises(ReferenceSyntaxError, match=re.escape("unclosed '{{'")) as later:
        parse_template("a {{ input.x }} b {{ c")
    assert later.value.offset == 18


def test_each_reference_closes_at_the_first_closing_braces() -> None:
    template = parse_template("{{ input.a }}}} and {{ state.b }}")
    assert template.pieces == (Path("input", ("a",)), "}} and ", Path("state", ("b",)))
    with pytest.raises(ReferenceSyntaxError, match="malformed path") as nested:
        parse_template("x {{ input.{{ state.b }} }}")
    assert nested.value.offset == 2


def test_paths_have_a_part_limit_and_a_length_limit() -> None:
    assert len(parse_path("input" + ".a" * MAX_PATH_PARTS).parts) == MAX_PATH_PARTS
    with pytest.raises(ReferenceSyntaxError, match=f"more than {MAX_PATH_PARTS} parts deep"):
        parse_path("input" + "[0]" * (MAX_PATH_PARTS + 1))
    with pytest.raises(ReferenceSyntaxError, match="path of 10005 characters; a path has at most 1024"):
        parse_template("{{ input" + ".a" * 5000 + " }}")
