"""IAM audit: every AWS call a function (or a state machine) makes locally is checked against the policy
``template.yaml`` gives it in AWS, so a missing permission shows up on the laptop instead of after deploy.

moto does not evaluate IAM. This module knows who is calling (the function whose handler runs on this
thread, or the state machines' role for calls made by moto's ASL interpreter), derives the IAM action and
the resource ARN of the call, and evaluates the principal's Allow statements (actions and resources with
IAM wildcards; conditions are not evaluated). Denials are logged and kept; with ``enforce=True`` the call
fails with ``AccessDeniedException`` as it would in AWS.
"""

from __future__ import annotations

import contextvars
import fnmatch
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from local.template import Template

LOG = logging.getLogger(__name__)

# The function whose handler runs on the current thread (set by the Lambda dispatcher).
current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_function", default=None)

# moto's ASL interpreter makes its service calls with this access key (moto.stepfunctions.parser boto_client_for).
_INTERPRETER_ACCESS_KEY = "ak"
STATES_PRINCIPAL = "StatesRole"
SCHEDULER_PRINCIPAL = "SchedulerRole"
"""EventBridge Scheduler's role: the local scheduler checks its invokes of the schedule function."""


@dataclass(frozen=True)
class Call:
    """One AWS API call as IAM sees it."""

    principal: str
    action: str
    resource: str
    allowed: bool


class AccessDenied(ClientError):
    """What botocore raises for a call IAM refuses."""


class IamAudit:
    """Policies of the template's principals and the record of the calls they made."""

    def __init__(self, template: Template, *, enforce: bool = False) -> None:
        self.region = template.region
        self.account_id = template.account_id
        self.enforce = enforce
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self._statements: dict[str, list[dict[str, Any]]] = {}
        self._ws_api: str | None = None
        if "WebSocketApi" in template.resources:
            self._ws_api = f"{template.resolve({'Ref': 'WebSocketApi'})}/{template.resolve({'Ref': 'StageName'})}"
        self._function_ids: dict[str, str] = {}
        for logical_id, spec in template.functions().items():
            self._function_ids[spec.name] = logical_id
            self._statements[logical_id] = _function_statements(template, logical_id)
        for principal in (STATES_PRINCIPAL, SCHEDULER_PRINCIPAL):  # roles whose calls the local cloud makes
            if principal in template.resources:
                role = template.role(principal)
                self._statements[principal] = [
                    s for p in role.get("Policies", []) for s in _as_list(p["PolicyDocument"]["Statement"])
                ]

    @property
    def denials(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if not c.allowed]

    def function_principal(self) -> str | None:
        """The template function whose handler runs on this thread, if any."""
        name = current_function.get()
        return None if name is None else self._function_ids.get(name)

    def allowed(self, principal: str, action: str, resource: str) -> bool:
        for statement in self._statements.get(principal, []):
            if statement.get("Effect", "Allow") != "Allow":
                continue
            actions = _as_list(statement.get("Action", []))
            resources = _as_list(statement.get("Resource", []))
            if any(_match(a, action, ignore_case=True) for a in actions) and any(
                _match(r, resource) for r in resources
            ):
                return True
        return False

    def check(self, principal: str, action: str, resource: str) -> Call:
        call = Call(principal, action, resource, self.allowed(principal, action, resource))
        with self._lock:
            self.calls.append(call)
        if not call.allowed:
            LOG.warning("would be denied in AWS: %s calling %s on %s", principal, action, resource)
        return call

    def _refuse(self, call: Call, operation: str) -> None:
        if not call.allowed and self.enforce:
            message = (
                f"User: {call.principal} is not authorized to perform: {call.action} on resource: "
                f"{call.resource} (local IAM audit of template.yaml)"
            )
            error = {
                "Error": {"Code": "AccessDeniedException", "Message": message},
                "ResponseMetadata": {"RequestId": "local-iam", "HTTPStatusCode": 403},
            }
            raise AccessDenied(error, operation)  # type: ignore[arg-type]

    def on_parameters(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        """botocore ``before-parameter-build`` handler: check a function's call (refuse it when enforcing)."""
        principal = self.function_principal()
        if principal is None:
            return
        service = model.service_model.signing_name
        if service == "execute-api":  # the management API of the (one) WebSocket API: ManageConnections
            arn = f"arn:aws:execute-api:{self.region}:{self.account_id}:{self._ws_api or '*'}"
            resource = f"{arn}/POST/@connections/{params.get('ConnectionId', '')}"
            self._refuse(self.check(principal, "execute-api:ManageConnections", resource), model.name)
            return
        if service == "apigateway" and model.name == "GetApiKey":
            resource = f"arn:aws:apigateway:{self.region}::/apikeys/{params.get('apiKey', '')}"
            self._refuse(self.check(principal, "apigateway:GET", resource), model.name)
            return
        for action, resource in _actions_and_resources(service, model.name, params, self.region, self.account_id):
            self._refuse(self.check(principal, action, resource), model.name)

    def on_interpreter_invoke(self, request_signer: Any, function_name: str) -> None:
        """Check a Task state's Lambda invoke against the states role (called by the Lambda dispatcher)."""
        if self.function_principal() is not None:
            return  # a function's own invoke, already checked by on_parameters
        credentials = getattr(request_signer, "_credentials", None)
        if getattr(credentials, "access_key", None) != _INTERPRETER_ACCESS_KEY:
            return
        arn = _lambda_arn(function_name, self.region, self.account_id)
        self._refuse(self.check(STATES_PRINCIPAL, "lambda:InvokeFunction", arn), "Invoke")


def _function_statements(template: Template, logical_id: str) -> list[dict[str, Any]]:
    props = template.resources[logical_id].get("Properties", {}) or {}
    statements: list[dict[str, Any]] = []
    for policy in template.resolve(props.get("Policies", []) or []):
        if isinstance(policy, dict) and "Statement" in policy:
            statements += _as_list(policy["Statement"])
    destination = (((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get("OnFailure") or {}).get(
        "Destination"
    )
    if destination is not None:  # SAM grants the function the right to send to its failure destination
        statements.append({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": template.resolve(destination)})
    return statements


def _actions_and_resources(
    service: str, operation: str, params: dict[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    """The IAM actions a call needs and the resource each applies to."""
    action = f"{service}:{operation}"
    if service == "dynamodb":
        return [(action, arn) for arn in _dynamodb_resources(params, region, account)] or [(action, "*")]
    if service == "states":
        states = f"arn:aws:states:{region}:{account}"
        if operation == "CreateStateMachine":
            found = [(action, f"{states}:stateMachine:{params.get('name', '')}")]
        elif operation in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
            # IAM authorizes a task token's answer on the state machine that issued it
            from local.callbacks import state_machine_of_token

            found = [(action, state_machine_of_token(str(params.get("taskToken", ""))) or "*")]
        else:
            arn = (
                params.get("stateMachineArn")
                or params.get("executionArn")
                or params.get("resourceArn")
                or params.get("mapRunArn")
                or "*"
            )
            found = [(action, arn)]
        if operation in ("CreateStateMachine", "UpdateStateMachine") and params.get("roleArn"):
            found.append(("iam:PassRole", params["roleArn"]))
        return found
    if service == "lambda":
        name = str(params.get("FunctionName", ""))
        calls = [("lambda:InvokeFunction" if operation == "Invoke" else action, _lambda_arn(name, region, account))]
        if operation == "CreateFunction" and params.get("Role"):
            calls.append(("iam:PassRole", str(params["Role"])))
        return calls
    if service == "scheduler" and params.get("Name"):
        group = str(params.get("GroupName") or "default")
        calls = [(action, f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{params['Name']}")]
        role = (params.get("Target") or {}).get("RoleArn")
        if operation in ("CreateSchedule", "UpdateSchedule") and role:
            calls.append(("iam:PassRole", str(role)))
        return calls
    if service == "bedrock" and operation in ("Converse", "ConverseStream"):
        model = str(params.get("modelId", ""))
        arn = model if model.startswith("arn:") else f"arn:aws:bedrock:{region}::foundation-model/{model}"
        return [("bedrock:InvokeModel" if operation == "Converse" else "bedrock:InvokeModelWithResponseStream", arn)]
    if service == "sqs" and params.get("QueueUrl"):
        queue = str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
        return [(action, f"arn:aws:sqs:{region}:{account}:{queue}")]
    return [(action, "*")]


def _dynamodb_resources(params: dict[str, Any], region: str, account: str) -> list[str]:
    def table(name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if "TableName" in params:
        return [table(params["TableName"], params.get("IndexName"))]
    if "RequestItems" in params:
        return [table(name) for name in params["RequestItems"]]
    if "TransactItems" in params:
        names = []
        for item in params["TransactItems"]:
            for value in item.values():
                if isinstance(value, dict) and "TableName" in value:
                    names.append(table(value["TableName"]))
        return names
    return []


def _lambda_arn(name: str, region: str, account: str) -> str:
    if name.startswith("arn:"):
        return name
    if ":function:" in name:
        return f"arn:aws:lambda:{region}:{name}"
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def _match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` one character."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    translated = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(value, translated)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
