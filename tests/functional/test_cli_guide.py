"""Every command the README shows works as shown.

Blocks fenced as ```bash are run, each by bash with ``set -euo pipefail``, against a real ``python -m
local.server`` (what ``make dev`` runs) started here on free loopback ports, in a copy of the repository's
``examples/``. The addresses the guide names (API on 127.0.0.1:3000, fixtures on 127.0.0.1:8765) are pointed
at those ports; the ``stepgraph`` CLI finds the API through ``STEPGRAPH_API``. Blocks fenced as ```shell need
things a test machine does not have (an AWS account, Docker, or a long-running ``make dev``); the test
checks that the make targets they name exist and run what the guide says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow  # a real server / every example end to end: tens of seconds

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README]
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
GUIDE_API, GUIDE_FIXTURES, GUIDE_WS = "http://127.0.0.1:3000", "127.0.0.1:8765", "ws://127.0.0.1:3001/"


def blocks(doc: Path, lang: str) -> list[str]:
    return [m["body"] for m in FENCE.finditer(doc.read_text(encoding="utf-8")) if m["lang"] == lang]


def runnable() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for index, body in enumerate(blocks(doc, "bash")):
            found.append((f"{doc.name}#{index}", body))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    def __init__(self, api: str, fixtures: str, workdir: Path, log: Path, ws: str = GUIDE_WS) -> None:
        self.api, self.fixtures, self.workdir, self.log, self.ws = api, fixtures, workdir, log, ws


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``python -m local.server`` on free ports, and a working directory with the examples pointed at it."""
    api_port, aws_port, fixtures_port, ws_port = free_port(), free_port(), free_port(), free_port()
    workdir = tmp_path_factory.mktemp("guide")
    fixtures = f"127.0.0.1:{fixtures_port}"
    shutil.copytree(ROOT / "examples", workdir / "examples")
    for path in (workdir / "examples").glob("*.json"):
        path.write_text(path.read_text().replace(GUIDE_FIXTURES, fixtures))
    log = workdir / "server.log"
    env = {**os.environ, "STEPGRAPH_API_KEY": "local-dev-key"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "local.server", "--port", str(api_port), "--aws-port", str(aws_port),
             "--fixtures-port", str(fixtures_port), "--ws-port", str(ws_port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, f"local.server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"local.server did not answer:\n{log.read_text()}"
            time.sleep(0.2)
        yield Stack(api, fixtures, workdir, log, f"ws://127.0.0.1:{ws_port}/")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_block(stack: Stack, body: str) -> subprocess.CompletedProcess[str]:
    script = body.replace(GUIDE_API, stack.api).replace(GUIDE_FIXTURES, stack.fixtures).replace(GUIDE_WS, stack.ws)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "STEPGRAPH_API": stack.api,
        "STEPGRAPH_WS": stack.ws,
        "STEPGRAPH_API_KEY": "local-dev-key",
        "COLUMNS": "200",
    }
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=stack.workdir, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_the_guide_has_runnable_blocks_for_the_cli_and_curl() -> None:
    # GIVEN the guide WHEN its bash blocks are listed THEN both tours are there to be run
    text = "\n".join(body for _, body in runnable())
    assert "stepgraph runs start" in text and "stepgraph runs watch" in text and "stepgraph runs cancel" in text
    assert "stepgraph graphs validate" in text and "stepgraph graphs diagram" in text
    assert "curl -s" in text
    assert "-H 'x-api-key: local-dev-key'" in text or "KEY='x-api-key: local-dev-key'" in text


@pytest.mark.parametrize(("where", "body"), runnable(), ids=[w for w, _ in runnable()])
def test_guide_block_runs_against_the_local_server(where: str, body: str, stack: Stack) -> None:
    # GIVEN a bash block of the guide
    # WHEN it is run as a user would, against make dev's server
    result = run_block(stack, body)

    # THEN every command in it succeeds (a failing run or API error exits non-zero and stops the block)
    assert result.returncode == 0, (
        f"{where} failed ({result.returncode})\n--- block\n{body}\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-3000:]}\n--- server log\n{stack.log.read_text()[-3000:]}"
    )
    # AND what the block shows came out
    if "json '[\"status\"]'" in body:
        assert "SUCCEEDED" in result.stdout
    if "--svg fetch-and-extract.svg" in body:
        assert (stack.workdir / "fetch-and-extract.svg").read_text().lstrip().startswith("<svg")
        assert "<svg" in (stack.workdir / "code-review.html").read_text()
    if "stepgraph runs start" in body and "--wait" in body:
        assert "SUCCEEDED" in result.stdout
        assert "polling" not in result.stderr  # the CLI followed the run over the WebSocket API
    if "websockets.sync.client" in body:
        assert "'type': 'run'" in result.stdout and "RUN_STARTED" in result.stdout


def test_the_shell_blocks_name_make_targets_that_exist() -> None:
    # GIVEN the guide's shell blocks (not run here: they need AWS, Docker or a foreground server)
    shell = "\n".join(body for doc in DOCS for body in blocks(doc, "shell"))
    assert "make dev" in shell and "make test" in shell

    # WHEN make is asked what `make dev` and `make test` would do
    dev = subprocess.run(["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True, check=False)
    test = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=False)

    # THEN dev serves local.server (the server the blocks above ran against) and test runs pytest
    assert dev.returncode == 0 and "-m local.server" in dev.stdout
    assert test.returncode == 0 and "pytest" in test.stdout


def test_the_aws_commands_name_things_the_template_and_samconfig_have() -> None:
    # GIVEN the guide's shell blocks for AWS (sam deploy, the stack outputs, sam local invoke)
    shell = "\n".join(body for doc in DOCS for body in blocks(doc, "shell"))
    template = (ROOT / "template.yaml").read_text()
    samconfig = (ROOT / "samconfig.toml").read_text()
    resources = template[template.index("\nResources:") : template.index("\nOutputs:")]
    outputs = template[template.index("\nOutputs:") :]

    # THEN every function, event file, environment and stack output they name exists
    invokes = re.findall(r"sam local invoke (\w+) -e (\S+)", shell)
    assert invokes
    for env_file in re.findall(r"--env-vars (\S+)", shell):
        assert (ROOT / env_file).is_file(), env_file
    for function, event in invokes:
        assert re.search(rf"^  {function}:\n    Type: AWS::Serverless::Function", resources, re.MULTILINE), function
        assert (ROOT / event).is_file(), event
    environments = re.findall(r"--config-env (\w+)", shell)
    assert environments
    for environment in environments:
        assert f"[{environment}.deploy.parameters]" in samconfig, environment
    keys = re.findall(r"OutputKey=='(\w+)'", shell)
    assert set(keys) >= {"ApiUrl", "ApiKeyId"}
    for key in keys:
        assert re.search(rf"^  {key}:", outputs, re.MULTILINE), key


def test_the_spec_shown_in_the_guide_is_valid(stack: Stack) -> None:
    # GIVEN the graph specs the guide shows as JSON
    specs = [json.loads(body) for doc in DOCS for body in blocks(doc, "json")]
    specs = [spec for spec in specs if isinstance(spec, dict) and "nodes" in spec]
    assert specs

    # WHEN each is validated by the API THEN it is accepted as it is
    for spec in specs:
        answer = httpx.post(
            f"{stack.api}/graphs/validate", json=spec, headers={"x-api-key": "local-dev-key"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["valid"], answer.json()["errors"]
