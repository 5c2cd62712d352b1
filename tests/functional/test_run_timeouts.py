"""Timeouts in whole runs: parallel nodes timing out together, and a CPU-bound tool past its timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functional_support import start_run, wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

TIMEOUTS = {"States.Timeout", "stepgraph.Timeout"}


def test_two_parallel_nodes_timing_out_end_the_run_with_a_timeout(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN two non-optional nodes in parallel, each sleeping past its 1 second timeout
    slow = [
        {"id": name, "tool": "util.sleep", "params": {"seconds": 5}, "timeout_seconds": 1, "retry": {"max_attempts": 0}}
        for name in ("a", "b")
    ]
    spec = {
        "name": "two-timeouts",
        "nodes": [{"id": "root", "tool": "util.echo", "params": {}}, *slow],
        "edges": [{"from": "root", "to": "a"}, {"from": "root", "to": "b"}],
    }

    # WHEN the run ends
    run = wait_for_run(api, start_run(api, spec), cloud=cloud)

    # THEN it failed with a timeout's name and a plain message, as did both nodes: no States.Runtime, no Python
    assert run["status"] == "FAILED", run
    assert run["error"]["code"] in TIMEOUTS, run["error"]
    for name in ("a", "b"):
        error = run["nodes"][name]["error"]
        assert run["nodes"][name]["status"] == "FAILED" and error["code"] in TIMEOUTS, error
    for message in [run["error"]["message"], *(run["nodes"][n]["error"]["message"] for n in ("a", "b"))]:
        assert "Error(" not in message and "Traceback" not in message and "States.Runtime" not in message


def test_an_exponential_transform_fails_its_node_as_a_timeout(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a transform whose expression would run for minutes, with a 1 second timeout and an optional node
    expression = " | ".join(["[*].[@, @][]"] * 22)
    spec = {
        "name": "blowup",
        "nodes": [
            {
                "id": "blowup",
                "tool": "transform",
                "params": {"value": [1], "expression": expression},
                "timeout_seconds": 1,
                "optional": True,
                "retry": {"max_attempts": 0},
            },
            {"id": "after", "tool": "util.echo", "params": {"went_on": True}},
        ],
        "edges": [{"from": "blowup", "to": "after"}],
    }

    # WHEN the run ends THEN the node failed as a timeout and the run went on past it
    run = wait_for_run(api, start_run(api, spec), timeout=60, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["blowup"]["status"] == "FAILED"
    assert run["nodes"]["blowup"]["error"]["code"] in TIMEOUTS
    assert run["nodes"]["after"]["output"] == {"went_on": True}
