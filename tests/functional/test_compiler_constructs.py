"""Each construct of the graph language, compiled and executed in moto through the local cloud and the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import functional_support

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


def run_graph(api: httpx.Client, spec: dict[str, Any], run_input: dict[str, Any] | None = None) -> dict[str, Any]:
    return functional_support.run_graph(api, {"name": "t", **spec}, run_input)


def echo(node_id: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", "params": params}


def test_diamond_fans_out_and_joins_every_branch_result(api: httpx.Client) -> None:
    # GIVEN a diamond: a -> (b, c) -> d, where d reads both branches
    spec = {
        "nodes": [
            echo("a", v="{{ input.x }}"),
            echo("b", v="{{ a.v }}"),
            echo("c", v="c-{{ a.v }}"),
            echo("d", left="{{ b.v }}", right="{{ c.v }}"),
        ],
        "edges": [
            {"from": "a", "to": "b"},
            {"from": "a", "to": "c"},
            {"from": "b", "to": "d"},
            {"from": "c", "to": "d"},
        ],
    }
    # WHEN it runs
    run = run_graph(api, spec, {"x": 7})
    # THEN every node succeeded once and the join saw both branches
    assert run["status"] == "SUCCEEDED", run
    assert {n: v["status"] for n, v in run["nodes"].items()} == dict.fromkeys("abcd", "SUCCEEDED")
    assert run["nodes"]["d"]["output"] == {"left": 7, "right": "c-7"}


def test_false_condition_skips_the_node_and_what_only_it_feeds(api: httpx.Client) -> None:
    # GIVEN a -> yes (when true) -> after_yes, a -> no (when false) -> after_no, and both -> merge
    spec = {
        "nodes": [echo("a", code=200), echo("yes", v=1), echo("no", v=2), echo("after_no", v=3), echo("merge", v=4)],
        "edges": [
            {"from": "a", "to": "yes", "when": "a.code == 200"},
            {"from": "a", "to": "no", "when": "a.code != 200"},
            {"from": "no", "to": "after_no"},
            {"from": "yes", "to": "merge"},
            {"from": "after_no", "to": "merge"},
        ],
    }
    run = run_graph(api, spec)
    # THEN the false branch and what only it feeds are SKIPPED, the merge still runs, the run succeeds
    assert run["status"] == "SUCCEEDED", run
    status = {n: v["status"] for n, v in run["nodes"].items()}
    assert status == {
        "a": "SUCCEEDED",
        "yes": "SUCCEEDED",
        "no": "SKIPPED",
        "after_no": "SKIPPED",
        "merge": "SUCCEEDED",
    }


def test_bounded_loop_runs_until_its_condition_fails_and_counts_iterations(api: httpx.Client) -> None:
    # GIVEN a loop body that bumps state.n each time, looping back while state.n < 3 (bound 5)
    spec = {
        "nodes": [
            {"id": "start", "tool": "util.echo", "params": {"n": 0}, "update_state": True},
            {"id": "bump", "tool": "util.echo", "params": {"n": "{{ state.n }}"}},
            {
                "id": "inc",
                "tool": "transform",
                "params": {"value": "{{ bump }}", "expression": "sum([n, `1`])"},
                "update_state": {"n": "result"},
            },
            echo("done", final="{{ state.n }}"),
        ],
        "edges": [
            {"from": "start", "to": "bump"},
            {"from": "bump", "to": "inc"},
            {"from": "inc", "to": "bump", "when": "state.n < 3", "max_iterations": 5},
            {"from": "inc", "to": "done"},
        ],
    }
    run = run_graph(api, spec)
    # THEN the body ran 3 times, then control went on to done
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["bump"]["iterations"] == 3
    assert run["nodes"]["inc"]["iterations"] == 3
    assert run["nodes"]["done"]["output"] == {"final": 3}
    assert run["state"]["n"] == 3


def test_loop_stops_at_max_iterations(api: httpx.Client) -> None:
    # GIVEN a back-edge whose condition always holds, bounded at 2
    spec = {
        "nodes": [echo("body", v=1), echo("after", v=2)],
        "edges": [{"from": "body", "to": "body", "max_iterations": 2}, {"from": "body", "to": "after"}],
    }
    run = run_graph(api, spec)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["body"]["iterations"] == 2
    assert run["nodes"]["after"]["status"] == "SUCCEEDED"


def test_foreach_keeps_item_order(api: httpx.Client) -> None:
    # GIVEN a foreach over five items with concurrency 2
    spec = {
        "nodes": [
            {
                "id": "each",
                "tool": "util.echo",
                "foreach": "{{ input.items }}",
                "params": {"value": "{{ item }}"},
                "max_concurrency": 2,
            },
            echo("after", all="{{ each }}"),
        ],
        "edges": [{"from": "each", "to": "after"}],
    }
    run = run_graph(api, spec, {"items": [5, 4, 3, 2, 1]})
    # THEN the node's output is the list of results in item order
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["each"]["output"] == [{"value": v} for v in [5, 4, 3, 2, 1]]
    assert run["nodes"]["after"]["output"] == {"all": [{"value": v} for v in [5, 4, 3, 2, 1]]}


def test_retry_policy_retries_until_success(api: httpx.Client) -> None:
    # GIVEN a node failing its first 2 attempts, allowed 2 retries
    spec = {
        "nodes": [
            {
                "id": "flaky",
                "tool": "util.fail",
                "params": {"failures": 2, "error": "Flaky"},
                "retry": {"max_attempts": 2, "interval_seconds": 1, "backoff_rate": 1.0},
            }
        ]
    }
    run = run_graph(api, spec)
    # THEN the third attempt succeeds and the record counts 3 attempts
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["flaky"]["attempts"] == 3


def test_optional_node_failure_is_recorded_and_the_run_goes_on(api: httpx.Client) -> None:
    # GIVEN an optional node that always fails, feeding a node that reads its (null) output
    spec = {
        "nodes": [
            {"id": "maybe", "tool": "util.fail", "params": {"failures": 99, "error": "Nope"}, "optional": True},
            echo("after", got="{{ maybe }}"),
        ],
        "edges": [{"from": "maybe", "to": "after"}],
    }
    run = run_graph(api, spec)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["maybe"]["status"] == "FAILED"
    assert run["nodes"]["maybe"]["error"]["code"] == "Nope"
    assert run["nodes"]["after"]["output"] == {"got": None}


def test_optional_node_timeout_is_recorded_with_the_step_functions_error(api: httpx.Client) -> None:
    # GIVEN an optional node that sleeps past its 1 s timeout
    spec = {
        "nodes": [
            {"id": "slow", "tool": "util.sleep", "params": {"seconds": 3}, "timeout_seconds": 1, "optional": True},
            echo("after", v=1),
        ],
        "edges": [{"from": "slow", "to": "after"}],
    }
    run = run_graph(api, spec)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["slow"]["status"] == "FAILED"
    assert run["nodes"]["slow"]["error"]["code"] == "States.Timeout"
    assert run["nodes"]["after"]["status"] == "SUCCEEDED"


def test_parallel_branches_updating_state_do_not_undo_each_other(api: httpx.Client) -> None:
    # GIVEN two independent nodes each writing a different state key, then a reader
    spec = {
        "nodes": [
            {"id": "left", "tool": "util.echo", "params": {"l": 1}, "update_state": True},
            {"id": "right", "tool": "util.echo", "params": {"r": 2}, "update_state": True},
            echo("read", l="{{ state.l }}", r="{{ state.r }}", keep="{{ state.keep }}"),
        ],
        "edges": [{"from": "left", "to": "read"}, {"from": "right", "to": "read"}],
    }
    run = run_graph(api, spec, {"keep": "yes"})
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["read"]["output"] == {"l": 1, "r": 2, "keep": "yes"}


def test_wide_fan_out_over_the_concurrency_cap_still_runs_every_node(api: httpx.Client) -> None:
    # GIVEN 12 independent nodes and max_concurrency 3, then a join reading them all
    nodes = [echo(f"n{i}", i=i) for i in range(12)]
    spec = {
        "nodes": [*nodes, echo("join", total=[f"{{{{ n{i}.i }}}}" for i in range(12)])],
        "edges": [{"from": f"n{i}", "to": "join"} for i in range(12)],
        "options": {"max_concurrency": 3},
    }
    run = run_graph(api, spec)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["join"]["output"] == {"total": list(range(12))}


def test_lambda_node_calls_the_users_function_and_records_its_output(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a user's function registered in the local cloud, called by a lambda: node with resolved params
    seen: list[Any] = []

    def count(event: Any, _context: Any) -> Any:
        seen.append(event)
        return {"length": len(event["text"])}

    cloud.register("stepgraph-user-count", count)
    spec = {
        "nodes": [
            echo("a", text="{{ input.text }}"),
            {
                "id": "mine",
                "tool": "lambda:stepgraph-user-count",
                "params": {"text": "{{ a.text }}", "note": "from {{ a.text }}"},
            },
            echo("after", got="{{ mine.length }}"),
        ],
        "edges": [{"from": "a", "to": "mine"}, {"from": "mine", "to": "after"}],
    }
    run = run_graph(api, spec, {"text": "hello"})
    # THEN the function got the params, and its output is the node's recorded output, read downstream
    assert run["status"] == "SUCCEEDED", run
    assert seen == [{"text": "hello", "note": "from hello"}]
    assert run["nodes"]["mine"]["status"] == "SUCCEEDED"
    assert run["nodes"]["mine"]["output"] == {"length": 5}
    assert run["nodes"]["after"]["output"] == {"got": 5}


def test_failing_lambda_node_fails_the_run_with_the_functions_error(api: httpx.Client, cloud: LocalCloud) -> None:
    def broken(event: Any, _context: Any) -> Any:
        raise KeyError("nope")

    cloud.register("stepgraph-user-broken", broken)
    run = run_graph(api, {"nodes": [{"id": "mine", "tool": "lambda:stepgraph-user-broken", "params": {}}]})
    assert run["status"] == "FAILED", run
    assert run["nodes"]["mine"]["status"] == "FAILED"
    assert run["nodes"]["mine"]["error"]["code"] == "KeyError"


def test_node_timeout_fails_the_run_with_states_timeout(api: httpx.Client) -> None:
    # GIVEN a required node that sleeps past its 1 s timeout
    spec = {
        "nodes": [
            {"id": "slow", "tool": "util.sleep", "params": {"seconds": 3}, "timeout_seconds": 1},
            echo("never", v=1),
        ],
        "edges": [{"from": "slow", "to": "never"}],
    }
    run = run_graph(api, spec)
    # THEN the run fails, the node carries Step Functions' error name, and nothing after it ran
    assert run["status"] == "FAILED", run
    assert run["nodes"]["slow"]["status"] == "FAILED"
    assert run["nodes"]["slow"]["error"]["code"] == "States.Timeout"
    assert run["nodes"]["never"]["attempts"] == 0


def test_a_timed_out_lambda_node_fails_the_run_under_a_name_a_fail_state_may_use(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a required lambda: node whose function outlasts the node's 1 s timeout
    import time

    def slow(event: Any, _context: Any) -> Any:
        time.sleep(2.5)
        return {}

    cloud.register("stepgraph-user-slow", slow, timeout=5)
    run = run_graph(api, {"nodes": [{"id": "mine", "tool": "lambda:stepgraph-user-slow", "timeout_seconds": 1}]})
    # THEN the node records Step Functions' States.Timeout, and the run ends with stepgraph.Timeout
    # (AWS refuses Fail states whose error starts with the reserved "States.")
    assert run["status"] == "FAILED", run
    assert run["nodes"]["mine"]["error"]["code"] == "States.Timeout"
    assert run["error"]["code"] == "stepgraph.Timeout", run["error"]
