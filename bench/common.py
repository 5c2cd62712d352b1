"""What the bench modules share: the ``Figure`` row, graph shapes, and a local stack to run graphs on.

Every bench module exposes ``figures(quick: bool = False) -> list[Figure]`` (``bench/__main__.py`` collects
them into one table). Graph shapes are deterministic for a given size and seed, so figures are comparable
from one run to the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    import httpx

    from local.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})


@dataclass(frozen=True)
class Figure:
    """One row of the bench table: what, how much, in which unit, and how it was measured."""

    section: str
    name: str
    value: float | int | str
    unit: str
    how: str


# ---------------------------------------------------------------------------------------------- graph shapes


def echo(node_id: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", "params": params}


def sleep(node_id: str, seconds: float) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.sleep", "params": {"seconds": seconds}}


def chain(n: int, *, name: str = "chain") -> dict[str, Any]:
    """``n`` echo nodes in a line; each references its parent's output."""
    nodes = [echo("n0", i=0)] + [echo(f"n{i}", i=i, prev=f"{{{{ n{i - 1}.i }}}}") for i in range(1, n)]
    edges = [{"from": f"n{i - 1}", "to": f"n{i}"} for i in range(1, n)]
    return {"name": name, "nodes": nodes, "edges": edges}


def wide(n: int, *, name: str = "wide", max_concurrency: int | None = None) -> dict[str, Any]:
    """A root, ``n - 2`` independent middle nodes, and a join that waits for all of them (``n`` nodes)."""
    middle = [f"m{i}" for i in range(max(1, n - 2))]
    nodes = [echo("root", v=1)] + [echo(m, i=i, v="{{ root.v }}") for i, m in enumerate(middle)] + [echo("join")]
    edges = [{"from": "root", "to": m} for m in middle] + [{"from": m, "to": "join"} for m in middle]
    spec: dict[str, Any] = {"name": name, "nodes": nodes, "edges": edges}
    if max_concurrency:
        spec["options"] = {"max_concurrency": max_concurrency}
    return spec


def lattice(half: int, *, name: str = "lattice") -> dict[str, Any]:
    """A diamond lattice: rows 1, 2, ..., ``half``, ..., 2, 1 nodes wide; a node of a widening row waits for
    its two neighbours above (one at the edges), a node of a narrowing row for the two above it.
    """
    widths = list(range(1, half + 1)) + list(range(half - 1, 0, -1))
    ids = [[f"r{r}c{c}" for c in range(w)] for r, w in enumerate(widths)]
    nodes = [echo(node_id, r=r) for r, row in enumerate(ids) for node_id in row]
    edges: list[dict[str, str]] = []
    for r in range(1, len(ids)):
        above = ids[r - 1]
        for c, node_id in enumerate(ids[r]):
            candidates = (c - 1, c) if len(ids[r]) > len(above) else (c, c + 1)
            edges.extend({"from": above[p], "to": node_id} for p in candidates if 0 <= p < len(above))
    return {"name": name, "nodes": nodes, "edges": edges, "options": {"max_concurrency": 40}}


def layered_dag(
    n: int,
    *,
    seed: int,
    width: int | None = None,
    durations: tuple[float, float] | None = None,
    name: str = "layered",
) -> dict[str, Any]:
    """A random layered DAG of ``n`` nodes: layers about ``width`` wide (default ~sqrt(n)); each node has one to
    three parents in the layer above and sometimes one further up. With ``durations`` the nodes are
    ``util.sleep`` with seconds drawn uniformly from that range (rounded to 10 ms), else ``util.echo``.
    """
    rng = random.Random(seed)
    width = width or max(2, round(n**0.5))
    layers: list[list[str]] = []
    count = 0
    while count < n:
        size = min(n - count, rng.randint(max(1, width // 2), width + width // 2))
        layers.append([f"l{len(layers)}n{i}" for i in range(size)])
        count += size
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for depth, layer in enumerate(layers):
        for node_id in layer:
            if durations:
                nodes.append(sleep(node_id, round(rng.uniform(*durations), 2)))
            else:
                nodes.append(echo(node_id, d=depth))
            if depth == 0:
                continue
            parents = set(rng.sample(layers[depth - 1], k=min(len(layers[depth - 1]), rng.randint(1, 3))))
            if depth >= 2 and rng.random() < 0.3:
                parents.add(rng.choice(layers[rng.randrange(0, depth - 1)]))
            edges.extend({"from": p, "to": node_id} for p in sorted(parents))
    return {"name": name, "nodes": nodes, "edges": edges, "options": {"max_concurrency": 1000}}


def critical_path(spec: dict[str, Any]) -> float:
    """The longest sum of ``util.sleep`` seconds along any path of an acyclic spec."""
    seconds = {
        n["id"]: float(n["params"].get("seconds", 0)) if n["tool"] == "util.sleep" else 0.0 for n in spec["nodes"]
    }
    parents: dict[str, list[str]] = {n: [] for n in seconds}
    for edge in spec["edges"]:
        parents[edge["to"]].append(edge["from"])
    finish: dict[str, float] = {}

    def done(node: str) -> float:
        if node not in finish:
            finish[node] = seconds[node] + max((done(p) for p in parents[node]), default=0.0)
        return finish[node]

    return max(done(n) for n in seconds)


def example(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An example spec of ``examples/`` and its sample input."""
    spec = json.loads((EXAMPLES / f"{name}.json").read_text())
    sample = EXAMPLES / f"{name}.input.json"
    return spec, (json.loads(sample.read_text()) if sample.exists() else {})


# ---------------------------------------------------------------------------------------------- the local stack


def local_stack() -> LocalCloud:
    """A LocalCloud with fake credentials and no real AWS endpoint (as tests/conftest.py sets them)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        os.environ[key] = "testing"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from local.cloud import LocalCloud

    return LocalCloud()


class Runner:
    """Creates graphs and runs them through the local API; reads executions back from moto's Step Functions."""

    def __init__(self, cloud: LocalCloud, api: httpx.Client) -> None:
        import boto3

        self.cloud = cloud
        self.api = api
        self.sfn = boto3.client("stepfunctions", region_name=cloud.region)

    def create(self, spec: dict[str, Any]) -> str:
        response = self.api.post("/graphs", json=spec)
        if response.status_code != 201:
            raise RuntimeError(f"POST /graphs {spec.get('name')}: {response.status_code} {response.text[:500]}")
        return str(response.json()["graph_id"])

    def start(
        self, graph_id: str, run_input: dict[str, Any] | None = None, api: httpx.Client | None = None
    ) -> dict[str, Any]:
        response = (api or self.api).post(f"/graphs/{graph_id}/runs", json={"input": run_input or {}})
        if response.status_code != 202:
            raise RuntimeError(f"POST /graphs/{graph_id}/runs: {response.status_code} {response.text[:500]}")
        return dict(response.json())

    def wait_execution(self, execution_arn: str, timeout: float = 120.0) -> dict[str, Any]:
        """DescribeExecution until it leaves RUNNING (polls every 20 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return dict(described)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still RUNNING after {timeout}s")
            time.sleep(0.02)

    def run(self, graph_id: str, run_input: dict[str, Any] | None = None, timeout: float = 120.0) -> Execution:
        started = self.start(graph_id, run_input)
        described = self.wait_execution(started["execution_arn"], timeout)
        return Execution(self, started["run_id"], started["execution_arn"], described)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(dict(e) for e in page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def node_records(self, run_id: str) -> list[Any]:
        from functions.store.records import Records

        return Records().list_nodes(run_id)


@dataclass
class Execution:
    """A finished run: its ids and what DescribeExecution said."""

    runner: Runner
    run_id: str
    arn: str
    described: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.described["status"])

    @property
    def seconds(self) -> float:
        """Execution wall time as Step Functions (moto) records it: stopDate - startDate."""
        start: datetime = self.described["startDate"]
        stop: datetime = self.described["stopDate"]
        return (stop - start).total_seconds()

    def why(self) -> str:
        """Why a run did not succeed: the execution's error and cause, shortened."""
        return f"{self.described.get('error')}: {str(self.described.get('cause'))[:300]}"

    def state_transitions(self) -> int:
        """States entered, as AWS bills them (``*StateEntered`` events of the execution history)."""
        return sum(1 for e in self.runner.history(self.arn) if str(e["type"]).endswith("StateEntered"))


def timed(fn: Any, *args: Any, repeat: int = 5, **kwargs: Any) -> tuple[float, Any]:
    """Best-of-``repeat`` wall time in seconds of ``fn(*args, **kwargs)`` after one warm-up call; the last result."""
    best = float("inf")
    result = fn(*args, **kwargs)  # warm-up, not timed: first-call costs (lazy imports, caches) are not the figure
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return best, result


@contextlib.contextmanager
def session() -> Iterator[Runner]:
    """``with session() as runner:`` a fresh local stack with an API client on it."""
    with local_stack() as cloud, cloud.client(api_key=cloud.api_key, timeout=120) as api:
        yield Runner(cloud, api)
