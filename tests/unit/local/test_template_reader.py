"""template.yaml as the local cloud reads it: functions, environment, table, routes, rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from local.template import Template, TemplateError, load_yaml, pattern_matches

if TYPE_CHECKING:
    from pathlib import Path

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def test_the_functions_with_handlers_and_their_own_timeouts(template: Template) -> None:
    # GIVEN the project's template WHEN its functions are read
    functions = template.functions()
    # THEN the API, executor, events, stream, WebSocket and schedule functions are there with the handlers SAM deploys
    assert {f: s.handler for f, s in functions.items()} == {
        "ApiFunction": "functions.api.handler.lambda_handler",
        "ExecutorFunction": "functions.executor.handler.lambda_handler",
        "EventsFunction": "functions.events.handler.lambda_handler",
        "StreamFunction": "functions.live.stream_handler.lambda_handler",
        "LiveFunction": "functions.live.ws.lambda_handler",
        "ScheduleFunction": "functions.schedules.handler.lambda_handler",
    }
    assert functions["ApiFunction"].timeout == 29  # API Gateway's integration limit
    assert functions["ExecutorFunction"].name == "stepgraph-executor"
    assert all(s.runtime == "python3.13" for s in functions.values())


def test_the_executor_timeout_validation_assumes_is_the_templates(template: Template) -> None:
    # GIVEN the executor function of the template
    from statemachine.spec import EXECUTOR_TIMEOUT_SECONDS

    # THEN its Timeout is the one validation checks built-in tool timeouts against
    assert template.functions()["ExecutorFunction"].timeout == EXECUTOR_TIMEOUT_SECONDS


def test_the_executor_memory_the_plan_prices_is_the_templates(template: Template) -> None:
    from statemachine.plan import EXECUTOR_MEMORY_MB

    assert template.functions()["ExecutorFunction"].memory == EXECUTOR_MEMORY_MB


def test_environment_comes_from_globals_with_intrinsics_resolved(template: Template) -> None:
    # GIVEN Globals with !Ref, !Sub and !GetAtt WHEN a function's environment is resolved
    env = template.functions()["ApiFunction"].environment
    # THEN every STEPGRAPH_* variable of docs/architecture.md has its local value
    assert env["STEPGRAPH_TABLE"] == "stepgraph-local"
    assert env["STEPGRAPH_EXECUTOR_ARN"] == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-executor"
    assert env["STEPGRAPH_STATES_ROLE_ARN"] == f"arn:aws:iam::{ACCOUNT}:role/stepgraph-states"
    assert env["STEPGRAPH_PREFIX"] == "stepgraph"
    assert env["POWERTOOLS_SERVICE_NAME"] == "stepgraph"
    assert env["LOG_LEVEL"] == "INFO"


def test_executor_arn_in_the_environment_is_the_executor_functions_arn(template: Template) -> None:
    # GIVEN the ARN built with !Sub from the executor's name (no self-reference)
    functions = template.functions()
    # THEN it names the function the template declares
    assert functions["ExecutorFunction"].environment["STEPGRAPH_EXECUTOR_ARN"] == functions["ExecutorFunction"].arn


def test_other_stack_names_change_every_derived_name(tmp_path: Path) -> None:
    # GIVEN the same template for a stack called "demo" WHEN resolved
    other = Template.load(stack_name="demo", region="eu-west-1")
    env = other.functions()["ExecutorFunction"].environment
    # THEN prefix, executor ARN and region follow
    assert env["STEPGRAPH_PREFIX"] == "demo"
    assert env["STEPGRAPH_EXECUTOR_ARN"] == f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:demo-executor"
    rule = other.event_rules()[0]
    assert rule.pattern["detail"]["stateMachineArn"] == [
        {"prefix": f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:demo-g_"}
    ]


def test_table_schema_gsi_and_ttl(template: Template) -> None:
    table = template.table()
    assert table.name == "stepgraph-local"
    assert table.key_schema == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert [g["IndexName"] for g in table.global_secondary_indexes] == ["gsi1"]
    assert table.global_secondary_indexes[0]["KeySchema"][0] == {"AttributeName": "gsi1pk", "KeyType": "HASH"}
    assert table.ttl_attribute == "expires_at"
    assert table.create_table_kwargs()["BillingMode"] == "PAY_PER_REQUEST"


def test_routes_most_specific_first_and_health_without_key(template: Template) -> None:
    routes = template.api_routes()
    # GIVEN GET /health WHEN matched THEN the literal route wins over the proxy, and needs no key
    first = next(r for r in routes if r.match("GET", "/health") is not None)
    assert (first.path, first.api_key_required) == ("/health", False)
    # AND anything else goes to {proxy+} with the key required
    hit = next(r for r in routes if r.match("POST", "/graphs/g_1/runs") is not None)
    assert (hit.path, hit.api_key_required) == ("/{proxy+}", True)
    assert hit.match("POST", "/graphs/g_1/runs") == {"proxy": "graphs/g_1/runs"}


def test_short_tags_are_read_in_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !Ref X\nB: !GetAtt R.Arn\nC: !Sub '${AWS::Region}-x'\nD: !If [C1, a, b]\n")
    data = load_yaml(path)
    assert data == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["R", "Arn"]},
        "C": {"Fn::Sub": "${AWS::Region}-x"},
        "D": {"Fn::If": ["C1", "a", "b"]},
    }


def test_unsupported_intrinsic_is_an_error(template: Template) -> None:
    with pytest.raises(TemplateError, match="Fn::ImportValue is not supported locally"):
        template.resolve({"Fn::ImportValue": "x"})


def test_parameter_overrides_reach_the_values(tmp_path: Path) -> None:
    t = Template.load(parameters={"LogLevel": "DEBUG", "UserFunctionNamePattern": "team-*"})
    assert t.functions()["EventsFunction"].environment["LOG_LEVEL"] == "DEBUG"
    statements = t.role("StatesRole")["Policies"][0]["PolicyDocument"]["Statement"]
    user = next(s for s in statements if s["Sid"] == "InvokeUserFunctions")
    assert user["Resource"] == [f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:team-*"]


PATTERN = {
    "source": ["aws.states"],
    "detail": {"status": ["SUCCEEDED", "FAILED"], "stateMachineArn": [{"prefix": "arn:sm:stepgraph-g_"}]},
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"source": "aws.states", "detail": {"status": "FAILED", "stateMachineArn": "arn:sm:stepgraph-g_1"}}, True),
        ({"source": "aws.states", "detail": {"status": "RUNNING", "stateMachineArn": "arn:sm:stepgraph-g_1"}}, False),
        ({"source": "aws.states", "detail": {"status": "FAILED", "stateMachineArn": "arn:sm:other-g_1"}}, False),
        ({"source": "aws.ec2", "detail": {"status": "FAILED", "stateMachineArn": "arn:sm:stepgraph-g_1"}}, False),
        ({"source": "aws.states", "detail": {"status": "FAILED"}}, False),
    ],
)
def test_eventbridge_pattern_matching(event: dict[str, object], expected: bool) -> None:
    assert pattern_matches(PATTERN, event) is expected


def test_anything_but_and_exists() -> None:
    assert pattern_matches({"a": [{"anything-but": ["x"]}]}, {"a": "y"})
    assert not pattern_matches({"a": [{"anything-but": ["x"]}]}, {"a": "x"})
    assert pattern_matches({"a": [{"exists": False}]}, {})
    assert not pattern_matches({"a": [{"exists": True}]}, {})


@pytest.mark.parametrize(
    ("machine", "expected"),
    [("stepgraph-g_0123456789ab", True), ("stepgraph-dev-g_0123456789ab", False), ("other-g_1", False)],
)
def test_the_status_rule_matches_this_stacks_machines_only(template: Template, machine: str, expected: bool) -> None:
    # GIVEN the rule of stack "stepgraph" and a terminal event of a machine named <stack>-<graph id>
    rule = template.event_rules()[0]
    event = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {
            "status": "SUCCEEDED",
            "stateMachineArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{machine}",
        },
    }
    # THEN a stack named "stepgraph-dev" does not see its events delivered to this stack
    assert pattern_matches(rule.pattern, event) is expected


def test_the_sam_local_env_file_matches_the_template() -> None:
    # GIVEN local/sam-local-env.json, for `sam local invoke --env-vars` against `make dev`
    import json

    from local.template import SAM_LOCAL_ENV_PATH, sam_local_env

    committed = json.loads(SAM_LOCAL_ENV_PATH.read_text())
    # THEN it is what the template resolves to today (regenerate: python -m local.template --sam-env)
    assert committed == sam_local_env()
    assert committed["ApiFunction"]["STEPGRAPH_TABLE"] == "stepgraph-local"
    assert committed["ExecutorFunction"]["AWS_ENDPOINT_URL"].endswith(":5000")
