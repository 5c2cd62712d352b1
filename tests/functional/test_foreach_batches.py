"""A long ``foreach`` in the local cloud: batches in a distributed Map, per-item retries, paged item results.

The 10,000-item run is in ``make bench`` (bench/scale.py); these runs are a few hundred items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from functional_support import start_run, wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

PAD = "x" * 4000
"""Each item's output carries this: 300 items make a list over the 1 MiB a run's response inlines."""


def pages(api: httpx.Client, run_id: str, node: str, limit: int) -> list[dict[str, Any]]:
    """Every page of a node's items, following ``next``."""
    out: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} if after is None else {"limit": limit, "after": after}
        response = api.get(f"/runs/{run_id}/nodes/{node}/items", params=params)
        assert response.status_code == 200, response.text
        out.append(response.json())
        after = out[-1]["next"]
        if after is None:
            return out


def history_events(execution_arn: str) -> int:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    count, kwargs = 0, {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        count += len(page["events"])
        if not page.get("nextToken"):
            return count
        kwargs["nextToken"] = page["nextToken"]


def test_a_foreach_of_300_items_runs_in_batches_and_its_results_are_paged_in_order(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a foreach over 300 items whose outputs add up to more than a run's response inlines
    spec = {
        "name": "long-foreach",
        "nodes": [
            {
                "id": "each",
                "tool": "util.echo",
                "foreach": "{{ input.items }}",
                "params": {"i": "{{ item }}", "pad": PAD},
            }
        ],
    }
    run_id = start_run(api, spec, {"items": list(range(300))})
    # WHEN it runs to the end
    run = wait_for_run(api, run_id, timeout=240, cloud=cloud)
    # THEN it SUCCEEDED, and the run's own history does not grow with the items (a child execution per batch)
    assert run["status"] == "SUCCEEDED", run
    assert history_events(run["execution_arn"]) < 40
    # AND GET /runs/{id} counts the items but leaves the long list out, saying its size and where it is paged
    each = run["nodes"]["each"]
    assert (each["status"], each["items_total"], each["items_done"]) == ("SUCCEEDED", 300, 300)
    assert each["output"] is None
    assert each["output_omitted"]["bytes"] > 300 * len(PAD)
    assert each["output_omitted"]["fields"] == ["$"]
    assert each["output_omitted"]["items_url"] == each["items_url"] == f"/runs/{run_id}/nodes/each/items"
    # AND the items route pages every item's result in index order, 100 at a time
    got = pages(api, run_id, "each", limit=100)
    assert [len(p["items"]) for p in got] == [100, 100, 100]
    items = [item for page in got for item in page["items"]]
    assert [item["index"] for item in items] == list(range(300))
    assert all(item["output"] == {"i": item["index"], "pad": PAD} for item in items)
    assert {(item["status"], item["attempts"]) for item in items} == {("SUCCEEDED", 1)}
    assert (got[0]["total"], got[0]["done"], got[0]["iteration"]) == (300, 300, 1)


def test_items_failing_once_are_retried_inside_their_batch_and_recorded_with_their_attempts(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a foreach over 40 items, each failing its first attempt, with one retry allowed
    spec = {
        "name": "flaky-foreach",
        "nodes": [
            {
                "id": "each",
                "tool": "util.fail",
                "foreach": "{{ input.items }}",
                "params": {"failures": 1, "error": "Flaky", "output": {"item": "{{ item }}"}},
                "retry": {"max_attempts": 1, "interval_seconds": 1, "backoff_rate": 1.0},
                "max_concurrency": 4,
            }
        ],
    }
    run_id = start_run(api, spec, {"items": list(range(40))})
    # WHEN it runs
    run = wait_for_run(api, run_id, timeout=240, cloud=cloud)
    # THEN every item succeeded on its second attempt, and the output keeps the items' order
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["each"]["output"] == [{"item": i} for i in range(40)]
    items = [item for page in pages(api, run_id, "each", limit=1000) for item in page["items"]]
    assert [(item["index"], item["status"], item["attempts"]) for item in items] == [
        (i, "SUCCEEDED", 2) for i in range(40)
    ]
    # AND each retry was announced, naming its item
    log = api.get(f"/runs/{run_id}/events", params={"limit": 1000}).json()["events"]
    retried = sorted(int(e["message"].split()[2]) for e in log if e["type"] == "NODE_RETRYING")
    assert retried == list(range(40))


def test_an_item_failing_for_good_fails_the_run_with_its_own_error(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a foreach whose item 7 always fails, no retries
    spec = {
        "name": "failing-foreach",
        "nodes": [
            {
                "id": "each",
                "tool": "util.fail",
                "foreach": "{{ input.items }}",
                "params": {"failures": "{{ item }}", "error": "BadItem"},
                "retry": {"max_attempts": 0},
            }
        ],
    }
    run_id = start_run(api, spec, {"items": [0] * 7 + [99] + [0] * 12})
    # WHEN it runs
    run = wait_for_run(api, run_id, timeout=120, cloud=cloud)
    # THEN the run FAILED with the item's error (not the Map's), and the node names the item
    assert run["status"] == "FAILED", run
    assert run["error"]["code"] == "BadItem"
    each = run["nodes"]["each"]
    assert each["status"] == "FAILED" and each["error"]["code"] == "BadItem"
    page = api.get(f"/runs/{run_id}/nodes/each/items", params={"limit": 1000}).json()
    failed = [item for item in page["items"] if item["status"] == "FAILED"]
    assert [(item["index"], item["error"]["code"]) for item in failed] == [(7, "BadItem")]


def test_the_items_route_answers_404_for_an_unknown_run_or_node(cloud: LocalCloud, api: httpx.Client) -> None:
    spec = {
        "name": "tiny",
        "nodes": [{"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "params": {}}],
    }
    run_id = start_run(api, spec, {"items": [1, 2]})
    wait_for_run(api, run_id, timeout=60)
    assert api.get(f"/runs/{run_id}/nodes/ghost/items").status_code == 404
    assert api.get("/runs/r_0000000000000000/nodes/each/items").status_code == 404
    assert api.get(f"/runs/{run_id}/nodes/each/items", params={"after": -1}).status_code == 422
