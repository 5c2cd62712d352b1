"""Idempotent start across two API instances: a retry that arrives while the first start is still in
progress is told so (409), and the key still starts one run.

In AWS two concurrent requests run in two Lambda environments. Here the second environment is another
process whose AWS calls reach this local cloud through moto's HTTP endpoint (as ``make dev`` serves it),
so both share the table and Step Functions; the first request is held inside its StartExecution call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from functions.api.services import get_services

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[2]
SECOND_INSTANCE = """
import json, sys
from functions.api.handler import lambda_handler

class Context:
    function_name = "stepgraph-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-api"
    aws_request_id = "second-instance"
    def get_remaining_time_in_millis(self):
        return 29000

print(json.dumps(lambda_handler(json.load(sys.stdin), Context())))
"""


def api_event(method: str, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    """The REST proxy event API Gateway sends, from the sample shared with ``sam local invoke``."""
    event = json.loads((ROOT / "events" / "api-post-graphs.json").read_text())
    all_headers = {**event["headers"], **headers}
    event.update(
        path=path,
        httpMethod=method,
        headers=all_headers,
        multiValueHeaders={k: [v] for k, v in all_headers.items()},
        pathParameters={"proxy": path.lstrip("/")},
        body=json.dumps(body),
    )
    event["requestContext"].update(path=f"/{event['requestContext']['stage']}{path}", httpMethod=method)
    return event


def test_a_retry_while_the_first_start_is_in_progress_is_409_and_the_key_starts_one_run(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    from moto.server import ThreadedMotoServer

    # GIVEN a graph, and the local cloud's AWS endpoint for a second API instance
    graph = api.post("/graphs", json={"name": "once", "nodes": [{"id": "a", "tool": "util.echo", "params": {}}]})
    graph_id = graph.json()["graph_id"]
    endpoint = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    endpoint.start()
    headers = {"Idempotency-Key": "nightly-42", "x-api-key": os.environ.get("STEPGRAPH_API_KEY", "")}
    body = {"input": {"n": 42}}

    # AND a first start held inside its StartExecution call (its idempotency record says in progress)
    sfn = get_services().sfn
    entered, release = threading.Event(), threading.Event()

    def hold(**_: Any) -> None:
        entered.set()
        release.wait(30)

    sfn.meta.events.register("before-call.states.StartExecution", hold, unique_id="hold-first-start")
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(reply=api.post(f"/graphs/{graph_id}/runs", json=body, headers=headers))
    )
    worker.start()
    try:
        assert entered.wait(20), "the first start never reached StartExecution"

        # WHEN the client's retry reaches a second instance meanwhile
        port = endpoint._server.server_port  # type: ignore[union-attr]
        env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        second = subprocess.run(
            [sys.executable, "-c", SECOND_INSTANCE],
            input=json.dumps(api_event("POST", f"/graphs/{graph_id}/runs", body, headers)),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        release.set()
        worker.join(30)
        sfn.meta.events.unregister("before-call.states.StartExecution", unique_id="hold-first-start")
        endpoint.stop()

    # THEN the retry is told the first is still in progress, with the documented error body
    assert second.returncode == 0, second.stderr
    response = json.loads(second.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 409, response
    assert json.loads(response["body"])["error"]["code"] == "idempotency_in_progress"
    # AND the first start completes, a later retry gets its answer, and one execution exists
    assert first["reply"].status_code == 202, first["reply"].text
    again = api.post(f"/graphs/{graph_id}/runs", json=body, headers=headers)
    assert again.status_code == 202 and again.json()["run_id"] == first["reply"].json()["run_id"]
    machine = api.get(f"/graphs/{graph_id}").json()["versions"][0]["state_machine_arn"]
    executions = boto3.client("stepfunctions", region_name=cloud.region).list_executions(stateMachineArn=machine)
    assert len(executions["executions"]) == 1
