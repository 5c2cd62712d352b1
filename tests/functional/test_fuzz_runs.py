"""A sample of hypothesis-generated specs that the validator accepts, created and run through the local cloud.

Each accepted spec must be created by the API (201: its definition is accepted by Step Functions) and its
run must end: SUCCEEDED, or FAILED with an error a node raised (a tool's code, a ``stepgraph.*`` data
error, or ``States.Timeout``), never an interpreter error such as ``States.Runtime`` that would mean the
compiled ASL itself is wrong. The log must be whole: one RUN_* event matching the run, no event twice.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from functional_support import wait_for_run
from hypothesis import HealthCheck, Phase, given, seed, settings

from statemachine.errors import SpecError
from tests.unit.fuzz.specs import SEEN, specs

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

validation = pytest.importorskip("statemachine.validation")
registry = pytest.importorskip("functions.executor.tools.registry")

RUNS = 6
INPUT = {"items": [1, 2], "v": 1, "text": "a calm text", "score": 7, "ok": True, "json": {"a": 1}, "a": "x"}


def _accepted(raw: dict[str, Any]) -> bool:
    try:
        validation.validate(raw, registry)
    except SpecError:
        return False
    return True


@seed(20261122)
@settings(
    max_examples=150,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(raw=specs())
def test_accepted_specs_create_and_run_to_an_end_in_the_local_cloud(
    cloud: LocalCloud, api: httpx.Client, raw: dict[str, Any]
) -> None:
    # GIVEN a generated spec the validator accepts (the first RUNS of them are run: each costs a second or two)
    # (a spec not run returns at once: rejected examples would make hypothesis generate more)
    if SEEN["runs"] >= RUNS or not _accepted(raw):
        return
    # WHEN it is created and run through the API
    created = api.post("/graphs", json=raw)
    assert created.status_code == 201, created.text
    started = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": INPUT})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    run = wait_for_run(api, run_id, cloud=cloud)
    SEEN["runs"] += 1
    SEEN["runs_succeeded"] += run["status"] == "SUCCEEDED"
    # THEN it ended, and a failure is one a node raised, not the interpreter refusing the ASL
    assert run["status"] in ("SUCCEEDED", "FAILED"), run
    if run["status"] == "FAILED":
        code, message = run["error"]["code"], run["error"]["message"]
        # a foreach's list missing at run time has its own test below
        known = (
            code == "States.Runtime" and "could not be found" in message and any(n.get("foreach") for n in raw["nodes"])
        )
        assert not code.startswith("States.") or code == "States.Timeout" or known, run["error"]
    # AND the log has exactly one RUN_* outcome matching the status, and no event twice
    log: list[dict[str, Any]] = []
    url = f"/runs/{run_id}/events"
    while url:
        page = api.get(url).json()
        log.extend(page["events"])
        url = f"/runs/{run_id}/events?after={page['next']}" if page["next"] else ""
    outcomes = [e["type"] for e in log if e["type"] in ("RUN_SUCCEEDED", "RUN_FAILED")]
    assert outcomes == [f"RUN_{run['status']}"]
    # (LOG lines are left out: the items of a foreach may log the same line at the same attempt)
    keys = Counter(
        (e["type"], e["node"], e.get("attempt"), e.get("iteration"), e.get("message"))
        for e in log
        if e["type"] != "LOG"
    )
    assert [k for k, n in keys.items() if n > 1] == []


def test_a_foreach_over_a_missing_list_fails_its_node_not_just_the_run(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a foreach over a reference the run's input does not have (valid syntax, wrong data)
    spec = {"name": "foreach-missing", "nodes": [{"id": "a", "tool": "util.echo", "foreach": "{{ input.missing }}"}]}
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    run_id = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": {}}).json()["run_id"]
    # WHEN it runs
    run = wait_for_run(api, run_id, timeout=20)
    # THEN the run FAILED and the node that could not run says so, with the error
    assert run["status"] == "FAILED", run
    assert run["nodes"]["a"]["status"] == "FAILED", run["nodes"]["a"]
    assert run["nodes"]["a"]["error"]["code"] == run["error"]["code"]
