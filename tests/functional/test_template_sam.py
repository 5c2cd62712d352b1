"""The template as SAM itself reads it (SAM CLI's and the SAM translator's own code, run in SAM CLI's
virtualenv): ``sam local invoke --env-vars local/sam-local-env.json`` gives each function the local stack's
environment, and the CloudFormation that ``sam deploy`` sends creates the API stage only after what its
access logging needs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.template import SAM_LOCAL_ENV_PATH, TEMPLATE_PATH

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SAM_PYTHON.exists(), reason="SAM CLI's virtualenv is missing (make sam-venv)"),
]

# What `sam local invoke` does before it starts the container: read the template's functions (Globals merged)
# and resolve each one's environment with the --env-vars overrides.
_RESOLVE = """
import json, sys
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

template, env_file = sys.argv[1], sys.argv[2]
stacks, _ = SamLocalStackProvider.get_stacks(template)
provider = SamFunctionProvider(stacks)
overrides = json.load(open(env_file)) if env_file else {}
runner = LocalLambdaRunner(
    local_runtime=None, function_provider=provider, cwd=".", real_path=".", env_vars_values=overrides
)
print(json.dumps({fn.name: runner._make_env_vars(fn).resolve() for fn in provider.get_all()}))
"""

# The CloudFormation template `sam deploy` sends (the transform SAM runs), CodeUri as `sam package` leaves it.
_TRANSLATE = """
import json, sys
from unittest.mock import MagicMock
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

text = open(sys.argv[1]).read().replace("CodeUri: .", "CodeUri: s3://bucket/key")
policies = MagicMock()
policies.load.return_value = {
    name: "arn:aws:iam::aws:policy/" + name for name in ("AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess")
}
print(json.dumps(transform(yaml_parse(text), {}, policies), default=str))
"""


def sam_python(code: str, *args: str) -> str:
    """Run ``code`` with SAM CLI's interpreter; the last line of its output."""
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def sam_resolved_env(env_vars: Path | None) -> dict[str, dict[str, str]]:
    return dict(json.loads(sam_python(_RESOLVE, str(TEMPLATE_PATH), str(env_vars or ""))))


def test_sam_local_invoke_passes_every_variable_of_the_env_vars_file() -> None:
    # GIVEN the env-vars file for `sam local invoke` against `make dev`
    wanted = json.loads(SAM_LOCAL_ENV_PATH.read_text())
    # WHEN SAM CLI resolves the functions' environments with it
    resolved = sam_resolved_env(SAM_LOCAL_ENV_PATH)
    # THEN each function gets every variable of the file, the API key and the local endpoint included
    assert set(resolved) == set(wanted) >= {"ApiFunction", "ExecutorFunction", "EventsFunction"}
    for function, variables in wanted.items():
        assert {k: resolved[function].get(k) for k in variables} == variables, function
        assert resolved[function]["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
        assert resolved[function]["STEPGRAPH_API_KEY"] == "local-dev-key"


def test_without_the_file_the_endpoint_is_empty_so_the_functions_call_aws() -> None:
    # GIVEN no env-vars file WHEN SAM CLI resolves the environments
    resolved = sam_resolved_env(None)
    # THEN the template's values stand: no endpoint override (botocore ignores an empty one) and no key
    for variables in resolved.values():
        assert variables["AWS_ENDPOINT_URL"] == ""
        assert variables["STEPGRAPH_API_KEY"] == ""


def references(value: Any) -> set[str]:
    """Logical ids ``value`` refers to (Ref, GetAtt, ${...} in Sub), also inside Fn::If branches."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", str(text))}
                found |= references(arg[1] if isinstance(arg, list) else [])
            else:
                found |= references(arg)
    return found


def created_before(resources: dict[str, Any], start: str) -> set[str]:
    """Every resource CloudFormation creates before ``start``: DependsOn and references (Metadata's too)."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        resource = resources[pending.pop()]
        after = references({k: v for k, v in resource.items() if k in ("Properties", "Metadata")})
        explicit = resource.get("DependsOn", [])
        after |= set(explicit if isinstance(explicit, list) else [explicit])
        for name in (after & set(resources)) - seen:
            seen.add(name)
            pending.append(name)
    return seen


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    return dict(json.loads(sam_python(_TRANSLATE, str(TEMPLATE_PATH))))


def test_the_api_stage_is_created_after_the_account_setting_access_logging_needs(deployed: dict[str, Any]) -> None:
    resources = deployed["Resources"]
    (stage,) = [k for k, v in resources.items() if v["Type"] == "AWS::ApiGateway::Stage"]
    # THEN the stage logs access unless ApiAccessLogging is "false"
    assert deployed["Parameters"]["ApiAccessLogging"]["Default"] == "true"
    assert resources[stage]["Properties"]["AccessLogSetting"]["Fn::If"][0] == "AccessLogging"
    # AND by default the stack sets the region's API Gateway CloudWatch role (a fresh account has none)
    assert deployed["Parameters"]["CreateApiGatewayAccountRole"]["Default"] == "true"
    account = resources["ApiGatewayAccount"]
    assert account["Condition"] == "CreateAccountRole"
    assert references(account["Properties"]["CloudWatchRoleArn"]) == {"ApiGatewayCloudWatchRole"}
    # AND the stage is created only after that setting: API Gateway checks it when the stage turns logging on
    assert "ApiGatewayAccount" in created_before(resources, stage)
    # AND the setting outlives the stack: other APIs of the region may log through it
    assert account["DeletionPolicy"] == resources["ApiGatewayCloudWatchRole"]["DeletionPolicy"] == "Retain"
