"""The IAM audit's reading of template.yaml: which calls each principal may make in AWS."""

from __future__ import annotations

import pytest

from local.iam import STATES_PRINCIPAL, IamAudit, _actions_and_resources
from local.template import Template

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/stepgraph-local"
STATES = f"arn:aws:states:us-east-1:{ACCOUNT}"


@pytest.fixture(scope="module")
def audit() -> IamAudit:
    return IamAudit(Template.load())


@pytest.mark.parametrize(
    ("principal", "action", "resource", "allowed"),
    [
        ("ApiFunction", "states:CreateStateMachine", f"{STATES}:stateMachine:stepgraph-g_0123456789ab", True),
        ("ApiFunction", "states:CreateStateMachine", f"{STATES}:stateMachine:stepgraph-dev-g_0123456789ab", False),
        ("ApiFunction", "states:StopExecution", f"{STATES}:execution:stepgraph-g_0123456789ab:r_1", True),
        ("ApiFunction", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/stepgraph-states", True),
        ("ApiFunction", "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", False),
        ("ApiFunction", "dynamodb:Query", f"{TABLE}/index/gsi1", True),
        ("ApiFunction", "dynamodb:Scan", TABLE, False),
        ("ExecutorFunction", "dynamodb:PutItem", TABLE, True),
        ("ExecutorFunction", "states:StartExecution", f"{STATES}:stateMachine:stepgraph-g_1", False),
        ("EventsFunction", "states:DescribeExecution", f"{STATES}:execution:stepgraph-g_1:r_1", True),
        ("EventsFunction", "states:StopExecution", f"{STATES}:execution:stepgraph-g_1:r_1", False),
        (
            STATES_PRINCIPAL,
            "lambda:InvokeFunction",
            f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-executor",
            True,
        ),
        (
            STATES_PRINCIPAL,
            "lambda:InvokeFunction",
            f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-user-x",
            True,
        ),
        (
            STATES_PRINCIPAL,
            "lambda:InvokeFunction",
            f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-api",
            False,
        ),
        (STATES_PRINCIPAL, "lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:someone-else", False),
    ],
)
def test_policies_of_the_template(audit: IamAudit, principal: str, action: str, resource: str, allowed: bool) -> None:
    assert audit.allowed(principal, action, resource) is allowed


def test_actions_are_case_insensitive_resources_are_not(audit: IamAudit) -> None:
    assert audit.allowed("ExecutorFunction", "DynamoDB:putitem", TABLE)
    assert not audit.allowed("ExecutorFunction", "dynamodb:PutItem", TABLE.upper())


def test_resources_of_calls() -> None:
    assert _actions_and_resources(
        "dynamodb", "Query", {"TableName": "t", "IndexName": "gsi1"}, "us-east-1", ACCOUNT
    ) == [("dynamodb:Query", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/index/gsi1")]
    transact = {"TransactItems": [{"Put": {"TableName": "a"}}, {"Update": {"TableName": "b"}}]}
    assert [r for _, r in _actions_and_resources("dynamodb", "TransactWriteItems", transact, "us-east-1", ACCOUNT)] == [
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/a",
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/b",
    ]
    created = _actions_and_resources(
        "states", "CreateStateMachine", {"name": "stepgraph-g_1", "roleArn": "arn:role"}, "us-east-1", ACCOUNT
    )
    assert created == [
        ("states:CreateStateMachine", f"{STATES}:stateMachine:stepgraph-g_1"),
        ("iam:PassRole", "arn:role"),
    ]
    assert _actions_and_resources("lambda", "Invoke", {"FunctionName": "f"}, "us-east-1", ACCOUNT) == [
        ("lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f")
    ]
    assert _actions_and_resources("states", "ListStateMachines", {}, "us-east-1", ACCOUNT) == [
        ("states:ListStateMachines", "*")
    ]


def test_the_user_function_pattern_parameter_changes_what_states_may_invoke() -> None:
    audit = IamAudit(Template.load(parameters={"UserFunctionNamePattern": "team-agents-*"}))
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
    assert audit.allowed(STATES_PRINCIPAL, "lambda:InvokeFunction", arn + "team-agents-review")
    assert not audit.allowed(STATES_PRINCIPAL, "lambda:InvokeFunction", arn + "stepgraph-user-x")
