"""template.yaml holds what DESIGN.md and docs/architecture.md promise, passes cfn-lint with the serverless
rules, and its IAM grants no ``*`` resource where a narrower ARN exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from local.template import TEMPLATE_PATH, Template, load_yaml

ROOT = Path(__file__).resolve().parents[2]

# Actions IAM does not scope to a resource: "*" is the only possible Resource for these.
NO_RESOURCE_LEVEL = {
    "states:ListStateMachines",
    "states:ListActivities",
    "states:ValidateStateMachineDefinition",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_yaml(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def resolved() -> Template:
    return Template.load()


def statements(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM policy statement written in the template, with the resource that holds it."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, res in raw["Resources"].items():
        props = res.get("Properties", {}) or {}
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
        elif res["Type"] == "AWS::Serverless::Function":
            for policy in props.get("Policies", []):
                if isinstance(policy, dict) and "Statement" in policy:
                    found += [(logical_id, s) for s in policy["Statement"]]
        elif res["Type"] in ("AWS::SQS::QueuePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(logical_id, s) for s in props["PolicyDocument"]["Statement"]]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_template_passes_cfn_lint_with_the_serverless_rules() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE_PATH, ManualArgs(append_rules=["cfn_lint_serverless.rules"]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    # GIVEN the template with the executor's log group missing (a serverless rule) WHEN linted
    from cfnlint.api import ManualArgs, lint_file

    broken = tmp_path / "template.yaml"
    text = TEMPLATE_PATH.read_text()
    start = text.index("  ExecutorFunctionLogs:")
    end = text.index("  EventsFunction:")
    broken.write_text(text[:start] + text[end:])
    matches = lint_file(broken, ManualArgs(append_rules=["cfn_lint_serverless.rules"]))
    # THEN the check that runs in `make test` fails
    assert "WS1004" in {m.rule.id for m in matches}


def star_offenders(raw: dict[str, Any]) -> list[tuple[str, str | None, list[str]]]:
    """Statements with a ``*`` resource for actions that IAM can scope to an ARN."""
    offenders = []
    for logical_id, statement in statements(raw):
        actions = as_list(statement["Action"])
        if "*" in as_list(statement.get("Resource", [])):
            narrowable = [a for a in actions if a not in NO_RESOURCE_LEVEL]
            if narrowable:
                offenders.append((logical_id, statement.get("Sid"), narrowable))
    return offenders


def test_no_star_resource_where_a_narrower_arn_exists(raw: dict[str, Any]) -> None:
    assert len(statements(raw)) >= 8
    assert star_offenders(raw) == []


def test_no_wildcard_actions(raw: dict[str, Any]) -> None:
    actions = [a for _, s in statements(raw) for a in as_list(s["Action"])]
    assert [a for a in actions if a == "*" or a.endswith(":*")] == []


def test_the_star_check_flags_a_star_that_could_be_narrower() -> None:
    # GIVEN the template with the executions statement widened to "*"
    raw = load_yaml(TEMPLATE_PATH)
    policies = raw["Resources"]["ApiFunction"]["Properties"]["Policies"]
    executions = next(s for p in policies for s in p["Statement"] if s["Sid"] == "Executions")
    executions["Resource"] = "*"
    # THEN the check names it
    assert star_offenders(raw) == [
        (
            "ApiFunction",
            "Executions",
            ["states:DescribeExecution", "states:StopExecution", "states:GetExecutionHistory"],
        )
    ]


def test_states_role_trusts_states_in_this_account_and_invokes_only_node_functions(resolved: Template) -> None:
    role = resolved.role("StatesRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    policies = {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in role["Policies"]}
    assert set(policies) == {"invoke-node-functions", "logs-and-traces", "run-distributed-map-children"}
    grants = policies["invoke-node-functions"]
    assert {a for s in grants for a in as_list(s["Action"])} == {"lambda:InvokeFunction"}
    resources = sorted(r for s in grants for r in as_list(s["Resource"]))
    assert resources == [
        "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor",
        "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor:*",
        "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-tool-*:*",
        "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-user-*",
    ]
    # AND a foreach's distributed Map may start, watch and stop child executions of the stack's own machines only
    children = policies["run-distributed-map-children"]
    others = {a: as_list(s["Resource"]) for s in children for a in as_list(s["Action"])}
    prefix = "arn:aws:states:us-east-1:123456789012"
    assert others == {
        "states:StartExecution": [f"{prefix}:stateMachine:stepgraph-g_*"],
        "states:DescribeExecution": [f"{prefix}:execution:stepgraph-g_*/*"],
        "states:StopExecution": [f"{prefix}:execution:stepgraph-g_*/*"],
    }


def test_registered_tools_role_may_only_write_their_logs(resolved: Template) -> None:
    # GIVEN the role every registered tool's function runs with
    role = resolved.role("ToolRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    grants = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    # THEN it may write logs, only to the tools' own log groups, and nothing else
    assert {a for s in grants for a in as_list(s["Action"])} == {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    groups = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/stepgraph-tool-*"
    assert sorted(r for s in grants for r in as_list(s["Resource"])) == [groups, f"{groups}:*"]


def test_api_rights_over_tool_functions_are_scoped_to_their_names_and_role(resolved: Template) -> None:
    api = resolved.resolve(resolved.resources["ApiFunction"]["Properties"]["Policies"])
    by_sid = {s["Sid"]: s for p in api for s in p["Statement"]}
    functions = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-tool-*"
    assert by_sid["RegisteredToolFunctions"]["Resource"] == [functions, f"{functions}:*"]
    assert "lambda:CreateFunction" in by_sid["RegisteredToolFunctions"]["Action"]
    lambda_grants = [s for s in by_sid.values() if any(a.startswith("lambda:") for a in as_list(s["Action"]))]
    assert [s["Sid"] for s in lambda_grants] == ["RegisteredToolFunctions"]
    assert by_sid["PassToolRole"]["Resource"] == resolved.arn("ToolRole")
    assert by_sid["PassToolRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    passes = [s for s in by_sid.values() if "iam:PassRole" in as_list(s["Action"])]
    assert sorted(s["Sid"] for s in passes) == ["PassSchedulerRole", "PassStatesRole", "PassToolRole"]


def test_api_function_rights_are_scoped_to_the_stack(resolved: Template) -> None:
    api = resolved.resolve(resolved.resources["ApiFunction"]["Properties"]["Policies"])
    by_sid = {s["Sid"]: s for p in api for s in p["Statement"]}
    prefix = "arn:aws:states:us-east-1:123456789012"
    assert by_sid["StateMachines"]["Resource"] == f"{prefix}:stateMachine:stepgraph-g_*"
    assert {"states:CreateStateMachine", "states:StartExecution"} <= set(by_sid["StateMachines"]["Action"])
    assert by_sid["Executions"]["Resource"] == f"{prefix}:execution:stepgraph-g_*:*"
    assert {"states:StopExecution", "states:DescribeExecution"} <= set(by_sid["Executions"]["Action"])
    assert by_sid["PassStatesRole"]["Action"] == "iam:PassRole"
    assert by_sid["PassStatesRole"]["Resource"] == "arn:aws:iam::123456789012:role/stepgraph-states"
    assert by_sid["PassStatesRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}
    assert by_sid["Table"]["Resource"] == [
        "arn:aws:dynamodb:us-east-1:123456789012:table/stepgraph-local",
        "arn:aws:dynamodb:us-east-1:123456789012:table/stepgraph-local/index/*",
    ]


def test_rest_api_requires_a_key_except_health_docs_console_and_preflights(
    raw: dict[str, Any], resolved: Template
) -> None:
    api = raw["Resources"]["Api"]
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["Auth"]["ApiKeyRequired"] is True
    assert api["Properties"]["Auth"]["UsagePlan"]["CreateUsagePlan"] == "PER_API"
    keyless = {(r.path, r.method) for r in resolved.api_routes() if not r.api_key_required}
    pages = {("/health", "GET"), ("/docs", "GET"), ("/openapi.json", "GET"), ("/console", "GET")}
    # Browsers send no key with a CORS preflight: OPTIONS reaches the function, which answers it.
    assert keyless == pages | {("/{proxy+}", "OPTIONS")}
    assert {(r.path, r.method) for r in resolved.api_routes() if r.api_key_required} == {("/{proxy+}", "ANY")}


def test_functions_are_python_313_on_arm64_built_by_makefile(raw: dict[str, Any]) -> None:
    glob = raw["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    variables = glob["Environment"]["Variables"]
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"} <= set(variables)
    assert {"STEPGRAPH_TABLE", "STEPGRAPH_EXECUTOR_ARN", "STEPGRAPH_STATES_ROLE_ARN", "STEPGRAPH_PREFIX"} <= set(
        variables
    )
    functions = {k: v for k, v in raw["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == {
        "ApiFunction",
        "ExecutorFunction",
        "EventsFunction",
        "StreamFunction",
        "LiveFunction",
        "ScheduleFunction",
    }
    makefile = (ROOT / "Makefile").read_text()
    for logical_id, fn in functions.items():
        assert fn["Metadata"] == {"BuildMethod": "makefile"}
        assert fn["Properties"]["CodeUri"] == "."
        assert f"build-{logical_id}" in makefile


def test_no_function_depends_on_itself(raw: dict[str, Any]) -> None:
    # The executor ARN is built with !Sub from its name: a !GetAtt to a function in Globals would make it
    # depend on itself (cfn-lint reports circular dependencies too; this names the reason).
    env = raw["Globals"]["Function"]["Environment"]["Variables"]
    text = repr(env)
    assert "ExecutorFunction" not in text and "ApiFunction" not in text and "EventsFunction" not in text


def test_status_change_rule_targets_the_events_function(resolved: Template) -> None:
    (rule,) = resolved.event_rules()
    assert rule.function == "EventsFunction"
    assert rule.pattern["source"] == ["aws.states"]
    assert rule.pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(rule.pattern["detail"]["status"]) == ["ABORTED", "FAILED", "SUCCEEDED", "TIMED_OUT"]


def test_outputs(raw: dict[str, Any]) -> None:
    assert {"ApiUrl", "TableName", "StatesRoleArn", "ApiKeyId"} <= set(raw["Outputs"])


def test_keyless_routes_are_the_paths_the_api_function_leaves_open(resolved: Template) -> None:
    # API Gateway enforces the key in AWS, the function locally: both must leave the same paths open
    from functions.api.app import PUBLIC_PATHS

    keyless = {r.path for r in resolved.api_routes() if not r.api_key_required and r.method != "OPTIONS"}
    assert keyless == set(PUBLIC_PATHS)


# boto3 methods that make a call besides the one named after its action (the resource's batch writer).
_ALSO_CALLED_AS = {"BatchWriteItem": ("batch_writer(",)}
# Calls made by libraries the functions use, not by our code: Powertools Idempotency (the API's and the schedule
# function's run starts) reads, writes, updates and deletes its records.
_IDEMPOTENCY_CALLS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
_LIBRARY_CALLS = {"ApiFunction": _IDEMPOTENCY_CALLS, "ScheduleFunction": _IDEMPOTENCY_CALLS}


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def test_every_granted_action_is_one_the_code_calls(raw: dict[str, Any]) -> None:
    # GIVEN every DynamoDB, Step Functions and EventBridge Scheduler action the functions are granted
    source = "\n".join(p.read_text() for p in (ROOT / "functions").rglob("*.py"))
    unused = []
    for logical_id, statement in statements(raw):
        for action in as_list(statement["Action"]):
            service, name = action.split(":")
            if service not in ("dynamodb", "states", "scheduler") or logical_id == "StatesRole":
                continue
            if action in _LIBRARY_CALLS.get(logical_id, set()) or action == "states:TagResource":
                continue  # TagResource: CreateStateMachine with tags needs it
            calls = (f".{_snake(name)}(", *_ALSO_CALLED_AS.get(name, ()))
            if not any(call in source for call in calls):
                unused.append((logical_id, action))
    # THEN the code calls each of them: IAM grants nothing more than what runs
    assert unused == []


def test_the_table_is_protected_from_deletion(raw: dict[str, Any]) -> None:
    table = raw["Resources"]["Table"]
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_state_machines_can_deliver_their_logs_and_traces(resolved: Template) -> None:
    # GIVEN the role every state machine runs as
    role = resolved.role("StatesRole")
    (policy,) = [p for p in role["Policies"] if p["PolicyName"] == "logs-and-traces"]
    actions = {a for s in policy["PolicyDocument"]["Statement"] for a in as_list(s["Action"])}
    # THEN it holds what Step Functions needs to deliver execution logs to CloudWatch Logs and traces to X-Ray
    assert {"logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeLogGroups"} <= actions
    assert {"xray:PutTraceSegments", "xray:GetSamplingTargets"} <= actions
    # AND the functions are told the level, the log group and whether to trace, from the parameters
    env = resolved.functions()["ApiFunction"].environment
    assert env["STEPGRAPH_STATES_LOG_LEVEL"] == "ERROR"
    assert env["STEPGRAPH_STATES_LOG_GROUP_ARN"].endswith(":log-group:/aws/vendedlogs/states/stepgraph:*")
    assert env["STEPGRAPH_TRACING"] == "true" and env["POWERTOOLS_TRACE_DISABLED"] == "false"


def test_alarms_watch_executor_errors_failed_runs_and_dead_letters(raw: dict[str, Any], resolved: Template) -> None:
    alarms = {
        k: resolved.resolve(v["Properties"]) for k, v in resolved.resources_of_type("AWS::CloudWatch::Alarm").items()
    }
    assert set(alarms) == {"ExecutorErrorsAlarm", "FailedRunsAlarm", "StatusDeadLettersAlarm"}
    watched = {
        k: (a["Namespace"], a["MetricName"], {d["Name"]: d["Value"] for d in a["Dimensions"]})
        for k, a in alarms.items()
    }
    assert watched["ExecutorErrorsAlarm"] == ("AWS/Lambda", "Errors", {"FunctionName": "stepgraph-executor"})
    assert watched["StatusDeadLettersAlarm"] == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": resolved.physical_name("StatusEventsDlq")},
    )
    # The failed-runs alarm watches the metric the events function emits, in the functions' namespace
    env = raw["Globals"]["Function"]["Environment"]["Variables"]
    from functions.events.handler import RUNS_FAILED

    assert watched["FailedRunsAlarm"] == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        RUNS_FAILED,
        {"service": env["POWERTOOLS_SERVICE_NAME"], "stack": "stepgraph"},
    )
    # AND they notify the topic given as a parameter, and nothing when none is
    assert raw["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert all(a.get("AlarmActions") is None and a.get("OKActions") is None for a in alarms.values())  # NoValue
    with_topic = Template.load(parameters={"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops"})
    for logical_id in alarms:
        props = with_topic.resolve(with_topic.resources[logical_id]["Properties"])
        assert props["AlarmActions"] == props["OKActions"] == ["arn:aws:sns:us-east-1:123456789012:ops"]


def test_schedules_are_scoped_to_the_stacks_group_and_may_only_invoke_the_schedule_function(
    resolved: Template,
) -> None:
    # GIVEN the role EventBridge Scheduler delivers fires as
    role = resolved.role("SchedulerRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    group = "arn:aws:scheduler:us-east-1:123456789012:schedule/stepgraph/*"
    # (the source of an assumption is the schedule group, as Scheduler's confused-deputy guidance says)
    assert trust["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": "123456789012",
            "aws:SourceArn": "arn:aws:scheduler:us-east-1:123456789012:schedule-group/stepgraph",
        }
    }
    grants = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    # THEN it may invoke the stack's schedule function and nothing else
    assert {a for s in grants for a in as_list(s["Action"])} == {"lambda:InvokeFunction"}
    function = resolved.arn("ScheduleFunction")
    assert sorted(r for s in grants for r in as_list(s["Resource"])) == [function, f"{function}:*"]
    # AND the API creates and deletes schedules only in the stack's group, passing only that role to Scheduler
    api = resolved.resolve(resolved.resources["ApiFunction"]["Properties"]["Policies"])
    by_sid = {s["Sid"]: s for p in api for s in p["Statement"]}
    assert by_sid["Schedules"]["Action"] == ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"]
    assert by_sid["Schedules"]["Resource"] == group
    assert resolved.resolve({"Ref": "ScheduleGroup"}) == "stepgraph"
    assert by_sid["PassSchedulerRole"]["Resource"] == resolved.arn("SchedulerRole")
    assert by_sid["PassSchedulerRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }
    # AND the schedule function reads and writes the table and starts executions of the stack's machines only
    own = resolved.resolve(resolved.resources["ScheduleFunction"]["Properties"]["Policies"])
    statements_by_sid = {s["Sid"]: s for p in own for s in p["Statement"]}
    assert set(statements_by_sid) == {"Table", "StartRuns"}
    assert statements_by_sid["Table"]["Resource"] == resolved.arn("Table")
    assert statements_by_sid["StartRuns"] == {
        "Sid": "StartRuns",
        "Effect": "Allow",
        "Action": "states:StartExecution",
        "Resource": "arn:aws:states:us-east-1:123456789012:stateMachine:stepgraph-g_*",
    }
    env = resolved.functions()["ApiFunction"].environment
    assert env["STEPGRAPH_SCHEDULE_FUNCTION_ARN"] == function
    assert env["STEPGRAPH_SCHEDULER_ROLE_ARN"] == resolved.arn("SchedulerRole")
    assert env["STEPGRAPH_SCHEDULE_GROUP"] == "stepgraph"
