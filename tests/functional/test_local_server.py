"""``python -m local.server`` (``make dev``): the API on one port, the local cloud's AWS endpoint on another."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
from functional_support import one_task

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


def test_the_dev_server_serves_the_api_and_the_aws_endpoint() -> None:
    api_port, aws_port = free_port(), free_port()
    env = {**os.environ, "STEPGRAPH_API_KEY": "k-test"}
    server = [sys.executable, "-m", "local.server", "--port", str(api_port), "--aws-port", str(aws_port)]
    # GIVEN the server started as a background job would be: with SIGINT ignored (it must stop all the same)
    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *server, "--no-fixtures"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{api_port}/health", proc)
        # THEN the API answers on its port
        assert httpx.get(f"http://127.0.0.1:{api_port}/health").status_code == 200
        # AND the AWS endpoint shows the stack's table and runs state machines created through it,
        # whose Task states are still dispatched in-process (an unknown function is not found, where
        # moto's own Lambda would have echoed the payload)
        kwargs = {
            "endpoint_url": f"http://127.0.0.1:{aws_port}",
            "region_name": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        assert "stepgraph-local" in boto3.client("dynamodb", **kwargs).list_tables()["TableNames"]
        sfn = boto3.client("stepfunctions", **kwargs)
        definition = one_task("stepgraph-user-nobody")
        arn = sfn.create_state_machine(
            name="stepgraph-ext",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/stepgraph-states",
        )["stateMachineArn"]
        assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["stepgraph-ext"]
        execution = sfn.start_execution(stateMachineArn=arn, name="x1", input="{}")["executionArn"]
        deadline = time.monotonic() + 20
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.05)
        assert described["error"] == "Lambda.ResourceNotFoundException"
        # AND its scheduler fires a schedule on time, by the real clock: a one-time schedule three seconds ahead
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"x-api-key": "k-test"}, timeout=10)
        spec = {"name": "tick", "nodes": [{"id": "a", "tool": "util.echo", "params": {"v": 1}}]}
        graph_id = api.post("/graphs", json=spec).json()["graph_id"]
        when = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S")
        created = api.post(f"/graphs/{graph_id}/schedules", json={"expression": f"at({when})"})
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 20
        while not (runs := api.get("/runs", params={"graph_id": graph_id}).json()["runs"]):
            assert time.monotonic() < deadline, "the schedule did not fire"
            time.sleep(0.1)
        assert runs[0]["trigger"] == {
            "type": "schedule",
            "schedule_id": created.json()["schedule_id"],
            "scheduled_time": f"{when}Z",
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            raise AssertionError(f"the server did not stop on Ctrl-C:\n{output}") from None
    # AND Ctrl-C stops it cleanly, after it printed both URLs and a curl line with the key
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{api_port}" in output
    assert f"http://127.0.0.1:{aws_port}" in output
    assert f"curl -s -H 'x-api-key: k-test' http://127.0.0.1:{api_port}/tools" in output
