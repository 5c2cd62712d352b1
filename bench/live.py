"""Figures of live runs, in the local cloud (real handlers, the stream function, the local WebSocket API).

- DynamoDB requests per node by operation, made by the executor, for a chain, a fan-out and a ``foreach``
  (from the local IAM audit, which sees every call a function makes);
- per-node overhead of a stepgraph chain beside the raw interpreter in the same run: a chain of the same
  length of optimized ``lambda:invoke`` Tasks on an echo Lambda, no stepgraph code in between;
- push latency: from the executor's write (the event's ``at``) to the frame received by a subscriber.

Local figures measure this machine's emulation, not AWS latency.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from bench.common import Figure, chain, session, wide

if TYPE_CHECKING:
    from bench.common import Runner

CHAIN = 20


def foreach(items: int) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = {
        "name": "each",
        "nodes": [{"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "params": {"v": "{{ item }}"}}],
    }
    return spec, {"items": list(range(items))}


def requests_per_node() -> list[Figure]:
    cases: dict[str, tuple[dict[str, Any], dict[str, Any], int, str]] = {
        "chain of 10": (chain(10), {}, 10, "node"),
        "fan-out of 10 (root, 8, join)": (wide(10, max_concurrency=10), {}, 10, "node"),
        "foreach over 10 items": (*foreach(10), 10, "item"),
    }
    rows: list[Figure] = []
    with session() as runner:
        calls = runner.cloud.iam.calls
        for label, (spec, run_input, count, per) in cases.items():
            graph_id = runner.create(spec)
            runner.run(graph_id, run_input)  # warm-up: first-call effects are not the figure
            before = len(calls)
            execution = runner.run(graph_id, run_input)
            runner.cloud.drain_events()
            made = Counter(c.action.split(":")[1] for c in calls[before:] if c.principal == "ExecutorFunction")
            if execution.status != "SUCCEEDED":
                rows.append(Figure("live", f"DynamoDB requests, {label}", f"run {execution.status}", "-", ""))
                continue
            total = sum(v for k, v in made.items() if k in DYNAMO_OPS)
            detail = ", ".join(f"{op} {made[op] / count:.2f}" for op in sorted(made) if op in DYNAMO_OPS)
            rows.append(
                Figure(
                    "live",
                    f"executor DynamoDB requests per {per}, {label}",
                    round(total / count, 2),
                    f"requests/{per}",
                    f"{detail or 'none'} (happy path, one run after a warm-up; from the local IAM audit)",
                )
            )
    return rows


DYNAMO_OPS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "ConditionCheckItem",
}


def _raw_chain(runner: Runner, function: str, n: int) -> str:
    states: dict[str, Any] = {}
    for i in range(n):
        states[f"s{i}"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function, "Payload.$": "$"},
            "OutputPath": "$.Payload",
            **({"Next": f"s{i + 1}"} if i < n - 1 else {"End": True}),
        }
    sfn = boto3.client("stepfunctions", region_name=runner.cloud.region)
    created = sfn.create_state_machine(
        name="stepgraph-g_rawchain",
        definition=json.dumps({"StartAt": "s0", "States": states}),
        roleArn=runner.cloud.states_role_arn,
    )
    return str(created["stateMachineArn"])


def _node_writes_cpu(nodes: int = 200) -> float:
    """Thread CPU ms of the executor's two happy-path writes of a node (start, succeed), made alone through
    the store into the local cloud's DynamoDB (moto behind boto3): the floor under a stepgraph node here."""
    from functions.store.records import Records

    records = Records()
    run_id = f"r_bench{time.time_ns():x}"
    began = time.thread_time()
    for i in range(nodes):
        records.start_attempt(run_id, f"n{i}", 0, 1, tool="util.echo")
        records.succeed_attempt(run_id, f"n{i}", 0, 1, output={"i": i}, tool_ms=0)
    return (time.thread_time() - began) / nodes * 1000


def _ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 1) if seconds else float("nan")


def overhead_beside_raw(quick: bool = False) -> list[Figure]:
    repeat = 2 if quick else 5
    with session() as runner:
        dispatcher = runner.cloud.dispatcher
        executor, stream = (runner.cloud.function_name(f) for f in ("ExecutorFunction", "StreamFunction"))
        function = executor.replace("-executor", "-user-echo")
        runner.cloud.register(function, lambda event, context: event, timeout=10)
        raw_arn = _raw_chain(runner, function, CHAIN)
        sfn = boto3.client("stepfunctions", region_name=runner.cloud.region)
        graph_id = runner.create(chain(CHAIN, name="overhead"))
        ours: list[float] = []
        held: list[float] = []
        raw: list[float] = []
        executor_cpu: list[float] = []
        stream_cpu: list[float] = []
        for i in range(repeat + 1):  # the first of each is a warm-up
            used = dispatcher.usage(executor), dispatcher.usage(stream)
            execution = runner.run(graph_id)
            runner.cloud.drain_events()
            ran, streamed = dispatcher.usage(executor) - used[0], dispatcher.usage(stream) - used[1]
            with contextlib.ExitStack() as stack:  # the stream function waits until the run has ended
                for held_stream in runner.cloud.streams:
                    stack.enter_context(held_stream.held())
                alone = runner.run(graph_id)
            runner.cloud.drain_events()
            started = sfn.start_execution(stateMachineArn=raw_arn, name=f"raw-{i}", input="{}")
            described = runner.wait_execution(started["executionArn"])
            if i == 0:
                continue
            if execution.status == "SUCCEEDED":
                ours.append(execution.seconds / CHAIN)
                executor_cpu.append(ran.cpu_seconds / CHAIN)
                stream_cpu.append(streamed.cpu_seconds / CHAIN)
            if alone.status == "SUCCEEDED":
                held.append(alone.seconds / CHAIN)
            if described["status"] == "SUCCEEDED":
                raw.append((described["stopDate"] - described["startDate"]).total_seconds() / CHAIN)
            runner.cloud.drain_events()
        writes = _node_writes_cpu(50 if quick else 200)
    if not ours or not raw:
        return [Figure("live", "per-node time beside the raw interpreter", "run failed", "-", "")]
    mine, theirs = statistics.median(ours) * 1000, statistics.median(raw) * 1000
    how = f"median of {len(ours)} runs of a chain of {CHAIN}: execution wall time / nodes"
    alone = statistics.median(held) * 1000 if held else float("nan")
    cpu_how = (
        f"median of {len(ours)} runs of the chain of {CHAIN} (stream live): the handler threads' CPU "
        "(the local Lambda's per-function usage) / nodes"
    )
    return [
        Figure("live", f"per node, stepgraph chain of {CHAIN} (util.echo)", round(mine, 1), "ms/node", how),
        Figure(
            "live",
            f"per node, stepgraph chain of {CHAIN}, stream function held until the run ends",
            round(alone, 1),
            "ms/node",
            how + "; locally the stream function shares the process (and moto's one DynamoDB lock) with the "
            "executor, in AWS it runs beside it: this is the executor's share",
        ),
        Figure(
            "live",
            f"per node, raw chain of {CHAIN} lambda:invoke Tasks on an echo Lambda",
            round(theirs, 1),
            "ms/node",
            how + ", same local cloud, same process, interleaved with the stepgraph runs",
        ),
        Figure("live", "stepgraph / raw interpreter per node (goal <= 1.5)", round(mine / theirs, 2), "x", how),
        Figure(
            "live",
            "stepgraph (stream function held) / raw interpreter per node",
            round(alone / theirs, 2),
            "x",
            how,
        ),
        Figure("live", "executor CPU per node", _ms(executor_cpu), "ms/node", cpu_how),
        Figure("live", "stream function CPU per node", _ms(stream_cpu), "ms/node", cpu_how),
        Figure(
            "live",
            "the executor's two writes of a node alone (start, succeed)",
            round(writes, 1),
            "ms CPU",
            "thread CPU of Records.start_attempt + succeed_attempt into the local cloud's DynamoDB (moto behind "
            "boto3), no run around them: what a node costs here before the executor does anything else",
        ),
    ]


def push_latency(quick: bool = False) -> list[Figure]:
    from websockets.sync.client import connect

    runs = 3 if quick else 10
    latencies: list[float] = []
    with session() as runner:
        url = runner.cloud.serve_websockets()
        graph_id = runner.create(chain(10, name="pushed"))
        for _ in range(runs):
            started = runner.start(graph_id)
            with connect(url, additional_headers={"x-api-key": runner.cloud.api_key or ""}) as socket:
                socket.send(json.dumps({"action": "subscribe", "run_id": started["run_id"], "after": 0}))
                while True:
                    message = json.loads(socket.recv(timeout=120))
                    received = datetime.now(UTC)
                    if message["type"] != "event":
                        break
                    event = message["event"]
                    if event["type"] in ("NODE_STARTED", "NODE_SUCCEEDED"):  # written by the executor
                        at = datetime.strptime(event["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                        latencies.append((received - at).total_seconds() * 1000)
            runner.cloud.drain_events()
            time.sleep(0.05)
    if not latencies:
        return [Figure("live", "push latency", "no frames", "-", "")]
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    how = (
        f"{len(latencies)} NODE_STARTED/NODE_SUCCEEDED frames of {runs} runs of a chain of 10, subscribed at start: "
        "frame received - the event's `at` (stamped by the executor just before its write); "
        "table stream → stream function → PostToConnection → local WebSocket server"
    )
    return [
        Figure(
            "live",
            "push latency p50 (executor write → frame received)",
            round(statistics.median(ordered), 1),
            "ms",
            how,
        ),
        Figure("live", "push latency p95 (executor write → frame received)", round(p95, 1), "ms", how),
    ]


def figures(quick: bool = False) -> list[Figure]:
    return [*requests_per_node(), *overhead_beside_raw(quick), *push_latency(quick)]
