"""The failed-runs alarm's metric: the events function counts one ``RunsFailed`` (EMF, namespace and
dimensions as the alarm in template.yaml watches them) for each run that ends FAILED, none for a success."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from functional_support import run_graph

if TYPE_CHECKING:
    import httpx
    import pytest

    from local.cloud import LocalCloud


def runs_failed(out: str) -> list[dict[str, Any]]:
    """The ``RunsFailed`` EMF records among the lines the functions printed."""
    found = []
    for line in out.splitlines():
        if '"RunsFailed"' in line and line.startswith("{"):
            record = json.loads(line)
            names = [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            if "RunsFailed" in names:
                found.append(record)
    return found


def test_a_failed_run_is_counted_once_and_a_successful_one_not(
    api: httpx.Client, cloud: LocalCloud, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN one run that succeeds and one whose only node fails
    ok = {"name": "ok", "nodes": [{"id": "a", "tool": "util.echo", "params": {"x": 1}}], "edges": []}
    bad = {
        "name": "bad",
        "nodes": [{"id": "boom", "tool": "util.fail", "params": {"failures": 9, "error": "UpstreamDown"}}],
        "edges": [],
    }
    # WHEN both end and their status-change events are handled
    assert run_graph(api, ok, {})["status"] == "SUCCEEDED"
    assert run_graph(api, bad, {})["status"] == "FAILED"
    assert cloud.drain_events(10)

    # THEN exactly one RunsFailed was emitted, in the namespace and dimensions the alarm watches
    (record,) = runs_failed(capfd.readouterr().out)
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "stepgraph"
    assert sorted(directive["Dimensions"][0]) == ["service", "stack"]
    assert (record["service"], record["stack"], record["RunsFailed"]) == ("stepgraph", "stepgraph", [1.0])
