"""Hostile input through the API on the local stack: every pathological body gets a 4xx naming what is wrong,
and whatever the API accepts can be read back.

How fast these answer is shown by ``make bench`` (bad input: validation time of worst-case bodies); here
each case pins the answer a caller gets.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from functional_support import wait_for_run

from functions.api.runs_service import MAX_RUN_INPUT_BYTES
from statemachine.conditions import MAX_CONDITION_CHARS, MAX_CONDITION_NESTING, MAX_CONDITION_TERMS
from statemachine.jsonlimits import MAX_INTEGER_DIGITS, MAX_JSON_DEPTH, MAX_OUTPUT_DEPTH
from statemachine.references import MAX_PATH_PARTS

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


def two_nodes(params: dict[str, Any] | None = None, when: str | None = None) -> dict[str, Any]:
    edge: dict[str, Any] = {"from": "a", "to": "b"}
    if when is not None:
        edge["when"] = when
    return {
        "name": "hostile",
        "nodes": [
            {"id": "a", "tool": "util.echo", "params": params or {"x": 1}},
            {"id": "b", "tool": "util.echo", "params": {}},
        ],
        "edges": [edge],
    }


def post_raw(api: httpx.Client, path: str, text: str) -> httpx.Response:
    return api.post(path, content=text.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"})


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = dict(response.json()["error"])
    assert error["code"] == code, error
    return error


def assert_no_graph_created(api: httpx.Client) -> None:
    assert api.get("/graphs").json()["graphs"] == []


# ---- references --------------------------------------------------------------------------------------------


def test_32000_unclosed_braces_in_a_param_are_refused_naming_the_first(api: httpx.Client) -> None:
    # WHEN a param string is 32,000 unclosed '{{'
    reply = api.post("/graphs", json=two_nodes({"x": "{{" * 32000}))

    # THEN 422 names the param, the offset and the unclosed reference
    error = error_of(reply, 422, "invalid_spec")
    assert error["details"] == [
        {
            "loc": "nodes[0].params.x",
            "node": "a",
            "message": "malformed reference at offset 0: unclosed '{{': a reference ends with '}}'",
        }
    ]
    assert_no_graph_created(api)


def test_a_reference_path_5000_parts_deep_is_refused(api: httpx.Client) -> None:
    # WHEN a reference path is 5,000 parts deep, and one is just over the part limit
    deep = api.post("/graphs", json=two_nodes({"x": "{{ input" + ".a" * 5000 + " }}"}))
    over = api.post("/graphs", json=two_nodes({"x": "{{ input" + ".a" * (MAX_PATH_PARTS + 1) + " }}"}))
    at_limit = api.post("/graphs/validate", json=two_nodes({"x": "{{ input" + ".a" * MAX_PATH_PARTS + " }}"}))

    # THEN both are 422 naming the path's size; a path at the limit is fine
    assert "a path has at most 1024" in error_of(deep, 422, "invalid_spec")["details"][0]["message"]
    assert f"a path has at most {MAX_PATH_PARTS}" in error_of(over, 422, "invalid_spec")["details"][0]["message"]
    assert at_limit.status_code == 200 and at_limit.json()["valid"] is True, at_limit.text


# ---- conditions --------------------------------------------------------------------------------------------


def test_10000_and_terms_are_refused_by_the_condition_length_limit(api: httpx.Client) -> None:
    # WHEN an edge condition has 10,000 'and' terms
    reply = api.post("/graphs", json=two_nodes(when=" and ".join(["input.x"] * 10_000)))

    # THEN 422 on that edge, naming the length limit (the condition is not echoed whole)
    (detail,) = error_of(reply, 422, "invalid_spec")["details"]
    assert detail["loc"] == "edges[0].when" and detail["edge"] == "a->b"
    assert f"a condition has at most {MAX_CONDITION_CHARS}" in detail["message"]
    assert len(detail["message"]) < 300


def test_too_many_terms_within_the_length_limit_are_refused(api: httpx.Client) -> None:
    # WHEN a short condition has one term more than allowed
    reply = api.post("/graphs", json=two_nodes(when=" or ".join(["input.x"] * (MAX_CONDITION_TERMS + 1))))

    # THEN 422 naming the term limit
    (detail,) = error_of(reply, 422, "invalid_spec")["details"]
    assert f"more than {MAX_CONDITION_TERMS} comparisons and tests" in detail["message"]


@pytest.mark.parametrize("depth", [1000, MAX_CONDITION_NESTING + 1])
def test_deeply_nested_not_is_refused(api: httpx.Client, depth: int) -> None:
    # WHEN a condition nests 'not' 1,000 deep (over the length limit) or one level over the nesting limit
    reply = api.post("/graphs", json=two_nodes(when="not " * depth + "input.x"))

    # THEN 422 naming which limit
    (detail,) = error_of(reply, 422, "invalid_spec")["details"]
    expected = "characters long" if depth == 1000 else f"and/or/not nested more than {MAX_CONDITION_NESTING} deep"
    assert expected in detail["message"]


@pytest.mark.parametrize("parts", [5000, MAX_PATH_PARTS + 1])
def test_a_deep_condition_path_is_refused(api: httpx.Client, parts: int) -> None:
    # WHEN a condition reads a path 5,000 parts deep (over the length limit) or one part over the path limit
    reply = api.post("/graphs", json=two_nodes(when="input" + ".a" * parts + " == 1"))

    # THEN 422 naming which limit
    (detail,) = error_of(reply, 422, "invalid_spec")["details"]
    expected = "characters long" if parts == 5000 else f"a path has at most {MAX_PATH_PARTS} parts"
    assert expected in detail["message"]


# ---- JSON intake -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 990, 5000])
def test_json_deeper_than_the_limit_is_refused(api: httpx.Client, depth: int) -> None:
    # WHEN the body nests lists deeper than the documented limit (990+ deep used to answer 500)
    body = '{"name": "deep", "nodes": [], "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    reply = post_raw(api, "/graphs", body)

    # THEN 422 naming the depth limit
    error = error_of(reply, 422, "limit_exceeded")
    assert f"nest at most {MAX_JSON_DEPTH} deep" in error["message"]
    assert_no_graph_created(api)


def test_json_at_the_depth_limit_is_read(api: httpx.Client) -> None:
    # WHEN a param nests exactly to the limit (body, nodes list, node, params, x: 4 levels, then lists)
    value: Any = []
    for _ in range(MAX_JSON_DEPTH - 5):
        value = [value]
    reply = api.post("/graphs/validate", json=two_nodes({"x": value}))

    # THEN it is an ordinary spec
    assert reply.status_code == 200 and reply.json()["valid"] is True, reply.text


def test_a_huge_integer_is_refused(api: httpx.Client) -> None:
    # WHEN a param is an integer of 5,000 digits (over Python's 4,300-digit conversion limit: used to be 500)
    reply = post_raw(api, "/graphs", json.dumps(two_nodes({"x": 0})).replace('"x": 0', '"x": ' + "9" * 5000))

    # THEN 422 naming the digit limit
    error = error_of(reply, 422, "limit_exceeded")
    assert f"integers have at most {MAX_INTEGER_DIGITS} digits" in error["message"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api: httpx.Client, token: str) -> None:
    # WHEN a param is NaN or an infinity (Python's json reads them; they used to be stored as null)
    reply = post_raw(api, "/graphs", json.dumps(two_nodes({"x": 0})).replace('"x": 0', f'"x": {token}'))

    # THEN 400: the body is not JSON, and the message names the token
    error = error_of(reply, 400, "malformed_json")
    assert f"{token} is not a JSON number" in error["message"]
    assert_no_graph_created(api)


def test_a_number_out_of_float_range_is_refused(api: httpx.Client) -> None:
    # WHEN a param is 1e400 (parsed as infinity, it used to be stored as null)
    reply = post_raw(api, "/graphs", json.dumps(two_nodes({"x": 0})).replace('"x": 0', '"x": 1e400'))

    # THEN 422 naming the number
    error = error_of(reply, 422, "limit_exceeded")
    assert "the number 1e400 is out of range" in error["message"]


def test_a_lone_surrogate_is_refused_with_its_place(api: httpx.Client) -> None:
    # WHEN a param string holds a lone surrogate escape (it used to crash the node)
    reply = post_raw(api, "/graphs", json.dumps(two_nodes({"x": "ok"})).replace('"ok"', '"a\\ud800b"'))

    # THEN 400 naming the surrogate and where it is
    error = error_of(reply, 400, "malformed_json")
    assert error["details"] == [
        {"loc": "nodes[0].params.x", "message": "lone surrogate \\ud800 (pair it, or send the character itself)"}
    ]


def test_a_surrogate_pair_is_an_ordinary_character(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN an echo graph
    graph = api.post("/graphs", json=two_nodes({"x": "{{ input.text }}"})).json()["graph_id"]

    # WHEN the input holds an escaped surrogate pair
    reply = post_raw(api, f"/graphs/{graph}/runs", '{"input": {"text": "smile \\ud83d\\ude00"}}')

    # THEN the run reads it as the character it is
    assert reply.status_code == 202, reply.text
    run = wait_for_run(api, reply.json()["run_id"], cloud=cloud)
    assert run["status"] == "SUCCEEDED"
    assert run["nodes"]["a"]["output"] == {"x": "smile \U0001f600"}


# ---- run input: what is accepted reads back ----------------------------------------------------------------


def echo_graph(api: httpx.Client) -> str:
    spec = {"name": "echo", "nodes": [{"id": "a", "tool": "util.echo", "params": {"v": "{{ input.v }}"}}], "edges": []}
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    return str(created.json()["graph_id"])


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [
        ("[" * 256 + "]" * 256, 422, "limit_exceeded"),
        ("NaN", 400, "malformed_json"),
        ("1e400", 422, "limit_exceeded"),
        ('"\\udc00"', 400, "malformed_json"),
        ("1" * 4400, 422, "limit_exceeded"),
    ],
    ids=["256-deep", "NaN", "1e400", "lone-surrogate", "4400-digits"],
)
def test_run_input_the_api_cannot_keep_is_refused_before_a_run_exists(
    api: httpx.Client, text: str, status: int, code: str
) -> None:
    # GIVEN a graph
    graph = echo_graph(api)

    # WHEN a run is started with input it could not store and read back
    reply = post_raw(api, f"/graphs/{graph}/runs", '{"input": {"v": ' + text + "}}")

    # THEN the start is refused and no run was recorded
    error_of(reply, status, code)
    assert api.get("/runs").json()["runs"] == []


def test_run_input_at_every_limit_is_accepted_and_reads_back(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph, and input at the depth, digit and float limits
    graph = echo_graph(api)
    deep: Any = "bottom"
    for _ in range(MAX_JSON_DEPTH - 3):  # the body, its "input" and the "v" object are the first three levels
        deep = [deep]
    value = {"deep": deep, "big": int("9" * MAX_INTEGER_DIGITS), "float": 1.7e308, "text": "é\U0001f600"}

    # WHEN a run is started with it
    reply = api.post(f"/graphs/{graph}/runs", json={"input": {"v": value}})

    # THEN it runs, and GET /runs/{id} gives the input and the node's output back unchanged
    assert reply.status_code == 202, reply.text
    run = wait_for_run(api, reply.json()["run_id"], cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert run["input"] == {"v": value}
    assert run["nodes"]["a"]["output"] == {"v": value}


def test_run_input_up_to_the_documented_limit_is_accepted_and_over_it_is_413(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a graph; inputs of exactly the limit and one byte over, as compact JSON
    graph = echo_graph(api)
    padding = MAX_RUN_INPUT_BYTES - len('{"v":""}')
    at_limit = {"v": "x" * padding}
    over = {"v": "x" * (padding + 1)}
    assert len(json.dumps(at_limit, separators=(",", ":"))) == MAX_RUN_INPUT_BYTES

    # WHEN runs are started with each
    accepted = api.post(f"/graphs/{graph}/runs", json={"input": at_limit})
    refused = api.post(f"/graphs/{graph}/runs", json={"input": over})

    # THEN the one at the limit runs and reads back; the one over it is 413 naming the limit
    assert accepted.status_code == 202, accepted.text
    run = wait_for_run(api, accepted.json()["run_id"], cloud=cloud)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["input"] == at_limit
    error = error_of(refused, 413, "payload_too_large")
    assert f"over the limit of {MAX_RUN_INPUT_BYTES} bytes" in error["message"]


# ---- what a node hands back ---------------------------------------------------------------------------------


def nested_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("depth", "recorded"), [(MAX_OUTPUT_DEPTH, "SUCCEEDED"), (MAX_OUTPUT_DEPTH + 60, "FAILED")])
def test_a_lambda_output_too_deep_to_serve_fails_its_node_and_the_run_stays_readable(
    api: httpx.Client, cloud: LocalCloud, depth: int, recorded: str
) -> None:
    # GIVEN a graph whose lambda: node's function answers lists nested `depth` deep
    cloud.register("stepgraph-user-deep", lambda event, ctx: nested_list(depth))
    spec = {"name": "deep", "nodes": [{"id": "deep", "tool": "lambda:stepgraph-user-deep"}], "edges": []}
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text

    # WHEN it runs
    started = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    run = wait_for_run(api, started.json()["run_id"], cloud=cloud)

    # THEN up to the limit the output is recorded and served whole; past it the node fails with InvalidOutput
    # naming the limit, and GET /runs/{id} still answers (it was a 500 once such an output was stored)
    node = run["nodes"]["deep"]
    assert node["status"] == recorded, node
    if recorded == "SUCCEEDED":
        assert node["output"] == nested_list(depth)
    else:
        assert run["status"] == "FAILED"
        assert node["error"]["code"] == "InvalidOutput"
        assert f"nest at most {MAX_OUTPUT_DEPTH} deep" in node["error"]["message"]


def raise_text(text: str) -> Any:
    def handler(event: Any, ctx: Any) -> Any:
        raise RuntimeError(text)

    return handler


@pytest.mark.parametrize("optional", [False, True])
def test_a_lambda_error_message_that_is_not_valid_unicode_leaves_the_run_readable(
    api: httpx.Client, cloud: LocalCloud, optional: bool
) -> None:
    # GIVEN a lambda: node whose function fails with a message holding a lone surrogate
    cloud.register("stepgraph-user-odd", raise_text("bad \ud800 text"))
    node: dict[str, Any] = {"id": "odd", "tool": "lambda:stepgraph-user-odd", "optional": optional}
    spec = {"name": "odd", "nodes": [node, {"id": "next", "tool": "util.echo", "params": {}}]}
    spec["edges"] = [{"from": "odd", "to": "next"}]
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text

    # WHEN it runs
    started = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": {}})
    run = wait_for_run(api, started.json()["run_id"], cloud=cloud)

    # THEN the run and its log read back (both were a 500 for good), the message with a replacement character
    assert run["status"] == ("SUCCEEDED" if optional else "FAILED"), run
    assert run["nodes"]["odd"]["error"] == {"code": "RuntimeError", "message": "bad \ufffd text"}
    events = api.get(f"/runs/{run['run_id']}/events")
    assert events.status_code == 200, events.text
    assert any("bad \ufffd text" in event["message"] for event in events.json()["events"])


def test_a_jmespath_expression_nested_past_the_parser_is_refused_naming_the_param(api: httpx.Client) -> None:
    # GIVEN a transform node whose expression is 3,000 parentheses deep (it was a 500)
    expression = "(" * 3000 + "a" + ")" * 3000
    spec = {
        "name": "deep",
        "nodes": [{"id": "t", "tool": "transform", "params": {"value": {}, "expression": expression}}],
    }
    # WHEN the graph is created THEN 422 names the node's param, and nothing is created
    error = error_of(api.post("/graphs", json=spec), 422, "invalid_spec")
    assert error["details"][0]["loc"] == "nodes[0].params.expression"
    assert "nests too deeply" in error["details"][0]["message"]
    assert_no_graph_created(api)
