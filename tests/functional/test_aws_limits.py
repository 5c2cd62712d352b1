"""What AWS refuses, the compiled graphs never do: payload limits at a join, catchable missing fields, the plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import functional_support
from functional_support import echo, history

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

PAYLOAD_LIMIT = 256 * 1024


def exited_outputs(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(state name, output bytes) of every state exit."""
    out = []
    for event in events:
        details = event.get("stateExitedEventDetails")
        if details:
            out.append((details["name"], len(details.get("output", "").encode())))
    return out


def branch_ends(definition: dict[str, Any]) -> set[str]:
    """Names of the states that end a Parallel branch (what the join gathers)."""
    ends: set[str] = set()
    for state in definition["States"].values():
        for branch in state.get("Branches", []):
            ends |= {name for name, s in branch["States"].items() if s.get("End")}
            ends |= branch_ends(branch)
    return ends


def test_a_large_input_on_a_ten_branch_fan_out_joins_under_the_payload_limit(api: httpx.Client) -> None:
    # GIVEN a 40 KB run input and ten independent nodes joined by a last one
    spec = {
        "name": "wide",
        "nodes": [*(echo(f"n{i}", i=i) for i in range(10)), echo("join", n="{{ n9.i }}", size="{{ input.note }}")],
        "edges": [{"from": f"n{i}", "to": "join"} for i in range(10)],
    }
    run_input = {"note": "x" * 40_000}
    # WHEN it runs
    run = functional_support.run_graph(api, spec, run_input)
    # THEN it succeeds, and what the ten branches hand to their join stays under 256 KiB (the input is not
    # carried ten times), as does every state's output
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["join"]["output"]["size"] == run_input["note"]
    definition = api.get(f"/graphs/{run['graph_id']}/definition").json()["definition"]
    outputs = exited_outputs(history(run["execution_arn"]))
    ends = branch_ends(definition)
    joined = sum(size for name, size in outputs if name in ends)
    assert 0 < joined < PAYLOAD_LIMIT, joined
    assert max(size for _, size in outputs) < PAYLOAD_LIMIT


def test_an_optional_lambda_node_missing_a_param_field_fails_catchably_and_the_run_goes_on(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN an optional lambda: node whose param reads a field the run input lacks, and a node after it
    called: list[Any] = []
    cloud.register("stepgraph-user-count", lambda event, _context: called.append(event) or {"n": 1})
    spec = {
        "name": "missing",
        "nodes": [
            {
                "id": "mine",
                "tool": "lambda:stepgraph-user-count",
                "params": {"t": "{{ input.nope.deeper }}"},
                "optional": True,
            },
            echo("after", got="{{ mine }}"),
        ],
        "edges": [{"from": "mine", "to": "after"}],
    }
    # WHEN it runs
    run = functional_support.run_graph(api, spec, {"other": 1})
    # THEN the node failed with stepgraph.ReferenceError (a node error a Catch takes on AWS, not the
    # uncatchable States.Runtime), its function was never called, and the run went on with a null output
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["mine"]["status"] == "FAILED"
    assert run["nodes"]["mine"]["error"]["code"] == "stepgraph.ReferenceError"
    assert "input.nope.deeper" in run["nodes"]["mine"]["error"]["message"]
    assert called == []
    assert run["nodes"]["after"]["output"] == {"got": None}
    assert all(e["type"] != "TaskFailed" or "States.Runtime" not in str(e) for e in history(run["execution_arn"]))


def test_a_required_lambda_node_missing_a_param_field_fails_the_run_with_the_reference_error(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a required lambda: node reading a run input field that is not there
    cloud.register("stepgraph-user-count", lambda event, _context: {"n": 1})
    spec = {
        "name": "missing-required",
        "nodes": [
            echo("a", go="{{ input.go }}"),
            {
                "id": "mine",
                "tool": "lambda:stepgraph-user-count",
                "params": {"v": "{{ input.v }}", "w": "{{ input.w }}"},
            },
        ],
        "edges": [{"from": "a", "to": "mine"}],
    }
    run = functional_support.run_graph(api, spec, {"go": True, "v": 1})
    # THEN the run fails with the node's reference error, under a name a Fail state may use
    assert run["status"] == "FAILED", run
    assert run["nodes"]["mine"]["error"]["code"] == "stepgraph.ReferenceError"
    assert run["error"]["code"] == "stepgraph.ReferenceError", run["error"]


def test_an_optional_foreach_over_a_missing_list_fails_catchably_and_the_run_goes_on(api: httpx.Client) -> None:
    # GIVEN an optional foreach over a list the run input does not have, and a node after it
    spec = {
        "name": "missing-list",
        "nodes": [
            {
                "id": "each",
                "tool": "util.echo",
                "foreach": "{{ input.items }}",
                "optional": True,
                "params": {"v": "{{ item }}"},
            },
            echo("after", got="{{ each }}"),
        ],
        "edges": [{"from": "each", "to": "after"}],
    }
    # WHEN it runs
    run = functional_support.run_graph(api, spec, {"other": 1})
    # THEN the foreach failed with a node error a Catch takes on AWS (not the uncatchable States.Runtime, which
    # the strict local cloud never lets a Catch take), and the run went on with its output null
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["each"]["status"] == "FAILED"
    assert run["nodes"]["each"]["error"]["code"].startswith("stepgraph.")
    assert run["nodes"]["after"]["output"] == {"got": None}


def test_the_largest_input_the_api_accepts_joins_a_ten_branch_fan_out_of_copies(api: httpx.Client) -> None:
    # GIVEN ten branches that each output the whole run input, and an input just under what the API accepts
    from functions.api.runs_service import MAX_RUN_INPUT_BYTES

    spec = {
        "name": "copies",
        "nodes": [*(echo(f"n{i}", i=i, v="{{ input.blob }}") for i in range(10)), echo("j", done=True)],
        "edges": [{"from": f"n{i}", "to": "j"} for i in range(10)],
    }
    blob = "x" * (MAX_RUN_INPUT_BYTES - 100)
    # WHEN it runs under the strict local cloud (256 KiB per state input, output and Parallel result)
    run = functional_support.run_graph(api, spec, {"blob": blob})
    # THEN the join fits and the run succeeds, each branch's copy intact
    assert run["status"] == "SUCCEEDED", (run["status"], run["error"])
    assert all(run["nodes"][f"n{i}"]["output"]["v"] == blob for i in range(10))
