"""Read ``template.yaml`` as the local cloud needs it: functions, the table, API routes, EventBridge rules.

CloudFormation short tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) are read into their long form, and the
intrinsics a function's environment uses are resolved to local values (stack ``stepgraph``, account
``123456789012``), so the handlers see the same variables locally as in AWS.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_STACK_NAME = "stepgraph"

# Physical names locally for resources the template leaves unnamed (CloudFormation would generate them).
DEFAULT_LOCAL_NAMES = {"Table": "{stack}-local", "StatesRole": "{stack}-states", "SchedulerRole": "{stack}-scheduler"}

_NAME_PROPERTIES = ("FunctionName", "TableName", "RoleName", "QueueName", "Name", "LogGroupName")


class TemplateError(Exception):
    """The template uses something the local cloud cannot resolve."""


# ------------------------------------------------------------------ YAML with CloudFormation tags


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml's when PyYAML has it: ten times faster) that turns ``!Tag value`` into
    ``{"Fn::Tag": value}`` (``!Ref`` into ``{"Ref": ...}``)."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported node for !{tag_suffix}")
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path | str) -> dict[str, Any]:
    """The template as plain dicts and lists, short tags in long form (a fresh copy each call: callers may
    change it; parsed once per file version, as every local cloud a test suite starts reads the same file)."""
    stat = os.stat(path)
    return copy.deepcopy(_parsed(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _parsed(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_CfnLoader)
    if not isinstance(data, dict):
        raise TemplateError(f"{path} is not a template")
    return data


# ------------------------------------------------------------------ what the local cloud reads


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the local dispatcher runs it."""

    logical_id: str
    name: str
    handler: str
    timeout: int
    memory: int
    runtime: str
    environment: dict[str, str]
    arn: str


@dataclass(frozen=True)
class TableSpec:
    """The DynamoDB table: enough to create it with the same keys, indexes and TTL."""

    logical_id: str
    name: str
    attribute_definitions: list[dict[str, str]]
    key_schema: list[dict[str, str]]
    global_secondary_indexes: list[dict[str, Any]]
    ttl_attribute: str | None
    billing_mode: str
    stream_view_type: str | None = None

    def create_table_kwargs(self) -> dict[str, Any]:
        """Arguments for ``dynamodb.create_table``."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "AttributeDefinitions": self.attribute_definitions,
            "KeySchema": self.key_schema,
            "BillingMode": self.billing_mode,
        }
        if self.global_secondary_indexes:
            kwargs["GlobalSecondaryIndexes"] = self.global_secondary_indexes
        if self.stream_view_type:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": self.stream_view_type}
        return kwargs


@dataclass(frozen=True)
class ApiRoute:
    """An ``Api`` event of a function: the API Gateway resource path, method and whether a key is needed."""

    function: str
    path: str
    method: str
    api_key_required: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``method path`` hits this route, else ``None``."""
        if self.method not in ("ANY", method.upper()):
            return None
        params: dict[str, str] = {}
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                if name.endswith("+"):
                    name = name[:-1]
                    pattern += f"(?P<{name}>.+)"
                else:
                    pattern += f"(?P<{name}>[^/]+)"
            else:
                pattern += re.escape(part)
        m = re.fullmatch(pattern, path, re.DOTALL)
        if m is None:
            return None
        params.update(m.groupdict())
        return params

    @property
    def specificity(self) -> tuple[int, int, int]:
        """API Gateway prefers literal paths over ``{param}`` over ``{proxy+}``, and a method over ANY."""
        greedy = int("+}" in self.path)
        params = self.path.count("{")
        return (greedy, params, int(self.method == "ANY"))


@dataclass(frozen=True)
class StreamMapping:
    """A ``DynamoDB`` event of a function: Lambda's event source mapping on the table's stream."""

    function: str
    name: str
    batch_size: int
    max_retries: int
    filters: list[dict[str, Any]]
    report_failures: bool


@dataclass(frozen=True)
class EventRule:
    """An ``EventBridgeRule`` event of a function, its pattern resolved to local values."""

    function: str
    name: str
    pattern: dict[str, Any]
    max_retries: int


@dataclass
class Template:
    """``template.yaml`` resolved for one local stack."""

    path: Path
    stack_name: str = LOCAL_STACK_NAME
    region: str = LOCAL_REGION
    account_id: str = LOCAL_ACCOUNT_ID
    parameters: dict[str, str] = field(default_factory=dict)
    local_names: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.raw = load_yaml(self.path)
        names = {k: v.format(stack=self.stack_name) for k, v in DEFAULT_LOCAL_NAMES.items()}
        names.update(self.local_names)
        self.local_names = names

    @classmethod
    def load(cls, path: Path | str | None = None, **kwargs: Any) -> Template:
        return cls(Path(path) if path else TEMPLATE_PATH, **kwargs)

    # -------------------------------------------------------------- resources

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw.get("Resources", {}))

    def resources_of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") in types}

    def physical_name(self, logical_id: str) -> str:
        """The resource's name: its explicit name property resolved, else the local default."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"no resource {logical_id!r}")
        props = resource.get("Properties", {}) or {}
        for prop in _NAME_PROPERTIES:
            if prop in props and resource["Type"] != "AWS::Serverless::Api":
                return str(self.resolve(props[prop]))
        if logical_id in self.local_names:
            return self.local_names[logical_id]
        return f"{self.stack_name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        """What ``!GetAtt <logical_id>.Arn`` is locally."""
        rtype = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        region, account = self.region, self.account_id
        if rtype in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            return f"arn:aws:lambda:{region}:{account}:function:{name}"
        if rtype == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        if rtype == "AWS::IAM::Role":
            return f"arn:aws:iam::{account}:role/{name}"
        if rtype == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{region}:{account}:{name}"
        if rtype == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{region}:{account}:log-group:{name}:*"
        raise TemplateError(f"no local ARN for {logical_id} ({rtype})")

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        params = self.raw.get("Parameters", {})
        if name in params:
            value = self.parameters[name] if name in self.parameters else params[name].get("Default")
            value = "" if value is None else str(value)
            if params[name].get("Type") == "CommaDelimitedList":
                return [part.strip() for part in value.split(",")] if value else []
            return value
        if name in self.resources:
            rtype = self.resources[name]["Type"]
            if rtype == "AWS::SQS::Queue":
                return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.physical_name(name)}"
            if rtype == "AWS::Serverless::Api":
                return "local"
            return self.physical_name(name)
        # Resources SAM generates (ApiApiKey, <Function>Role, ...) have no local counterpart.
        return f"{self.stack_name}-{name}"

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            return f"arn:aws:local:{self.region}:{self.account_id}:{logical_id}/{attribute}"
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute == "QueueName":
            return self.physical_name(logical_id)
        if attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/local"
        raise TemplateError(f"no local value for !GetAtt {logical_id}.{attribute}")

    def condition(self, name: str) -> bool:
        conditions = self.raw.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"no condition {name!r}")
        return bool(self.resolve(conditions[name]))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value if not _is_no_value(v)]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(v) for v in self.resolve(items))
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg)[0]
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported locally")
        return {k: self.resolve(v) for k, v in value.items() if not _is_no_value(v)}

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                logical_id, attribute = expr.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(expr))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # -------------------------------------------------------------- what the local cloud uses

    @property
    def globals_function(self) -> dict[str, Any]:
        return dict(self.raw.get("Globals", {}).get("Function", {}) or {})

    def functions(self) -> dict[str, FunctionSpec]:
        """Every function by logical id, with Globals merged in and its environment resolved."""
        glob = self.globals_function
        out: dict[str, FunctionSpec] = {}
        for logical_id, res in self.resources_of_type("AWS::Serverless::Function").items():
            props = res.get("Properties", {}) or {}
            env: dict[str, Any] = {}
            env.update((glob.get("Environment", {}) or {}).get("Variables", {}) or {})
            env.update((props.get("Environment", {}) or {}).get("Variables", {}) or {})
            resolved = {k: _env_str(self.resolve(v)) for k, v in env.items()}
            name = self.physical_name(logical_id)
            out[logical_id] = FunctionSpec(
                logical_id=logical_id,
                name=name,
                handler=str(props.get("Handler", glob.get("Handler", ""))),
                timeout=int(self.resolve(props.get("Timeout", glob.get("Timeout", 3)))),
                memory=int(self.resolve(props.get("MemorySize", glob.get("MemorySize", 128)))),
                runtime=str(props.get("Runtime", glob.get("Runtime", ""))),
                environment=resolved,
                arn=f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
            )
        return out

    def table(self, logical_id: str | None = None) -> TableSpec:
        """The DynamoDB table (the only one unless ``logical_id`` names another)."""
        tables = self.resources_of_type("AWS::DynamoDB::Table")
        if logical_id is None:
            if len(tables) != 1:
                raise TemplateError(f"expected one DynamoDB table, found {sorted(tables)}")
            logical_id = next(iter(tables))
        props = self.resolve(tables[logical_id].get("Properties", {}) or {})
        gsis = []
        for gsi in props.get("GlobalSecondaryIndexes", []) or []:
            gsis.append({"IndexName": gsi["IndexName"], "KeySchema": gsi["KeySchema"], "Projection": gsi["Projection"]})
        ttl = props.get("TimeToLiveSpecification") or {}
        return TableSpec(
            logical_id=logical_id,
            name=self.physical_name(logical_id),
            attribute_definitions=props["AttributeDefinitions"],
            key_schema=props["KeySchema"],
            global_secondary_indexes=gsis,
            ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", False) else None,
            billing_mode=props.get("BillingMode", "PAY_PER_REQUEST"),
            stream_view_type=(props.get("StreamSpecification") or {}).get("StreamViewType"),
        )

    def role(self, logical_id: str) -> dict[str, Any]:
        """An IAM role's resolved properties (trust policy, inline policies)."""
        res = self.resources_of_type("AWS::IAM::Role").get(logical_id)
        if res is None:
            raise TemplateError(f"no IAM role {logical_id!r}")
        return dict(self.resolve(res.get("Properties", {}) or {}))

    def api_routes(self) -> list[ApiRoute]:
        """The ``Api`` events of every function, most specific first (as API Gateway matches them)."""
        api_auth = {}
        for logical_id, res in self.resources_of_type("AWS::Serverless::Api").items():
            auth = (res.get("Properties", {}) or {}).get("Auth", {}) or {}
            api_auth[logical_id] = bool(auth.get("ApiKeyRequired", False))
        routes = []
        for logical_id, res in self.resources_of_type("AWS::Serverless::Function").items():
            for event in ((res.get("Properties", {}) or {}).get("Events", {}) or {}).values():
                if event.get("Type") != "Api":
                    continue
                props = event.get("Properties", {}) or {}
                api_ref = props.get("RestApiId", {})
                api_id = api_ref.get("Ref") if isinstance(api_ref, dict) else None
                required = api_auth.get(api_id or "", False)
                auth = props.get("Auth", {}) or {}
                if "ApiKeyRequired" in auth:
                    required = bool(auth["ApiKeyRequired"])
                routes.append(ApiRoute(logical_id, props["Path"], str(props["Method"]).upper(), required))
        return sorted(routes, key=lambda r: r.specificity)

    def event_rules(self) -> list[EventRule]:
        """The ``EventBridgeRule`` events of every function, patterns resolved."""
        rules = []
        for logical_id, res in self.resources_of_type("AWS::Serverless::Function").items():
            props = res.get("Properties", {}) or {}
            retries = int((props.get("EventInvokeConfig", {}) or {}).get("MaximumRetryAttempts", 2))
            for name, event in (props.get("Events", {}) or {}).items():
                if event.get("Type") != "EventBridgeRule":
                    continue
                pattern = self.resolve((event.get("Properties", {}) or {}).get("Pattern", {}))
                rules.append(EventRule(logical_id, f"{logical_id}{name}", pattern, retries))
        return rules

    def stream_mappings(self) -> list[StreamMapping]:
        """The ``DynamoDB`` (stream) events of every function, filter patterns parsed."""
        found = []
        for logical_id, res in self.resources_of_type("AWS::Serverless::Function").items():
            for name, event in ((res.get("Properties", {}) or {}).get("Events", {}) or {}).items():
                if event.get("Type") != "DynamoDB":
                    continue
                props = self.resolve(event.get("Properties", {}) or {})
                filters = [json.loads(f["Pattern"]) for f in (props.get("FilterCriteria") or {}).get("Filters", [])]
                found.append(
                    StreamMapping(
                        function=logical_id,
                        name=f"{logical_id}{name}",
                        batch_size=int(props.get("BatchSize", 100)),
                        max_retries=int(props.get("MaximumRetryAttempts", -1)),
                        filters=filters,
                        report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    )
                )
        return found

    def stage_name(self) -> str:
        apis = self.resources_of_type("AWS::Serverless::Api")
        for res in apis.values():
            stage = (res.get("Properties", {}) or {}).get("StageName")
            if stage is not None:
                return str(self.resolve(stage))
        return "Prod"


def _is_no_value(value: Any) -> bool:
    return isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# ------------------------------------------------------------------ EventBridge pattern matching


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether ``event`` matches an EventBridge ``pattern`` (exact values, ``prefix``, ``anything-but``,
    ``exists``, nested objects) as EventBridge matches it: every field of the pattern must match."""
    for key, expected in pattern.items():
        present = key in event
        actual = event.get(key)
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not pattern_matches(expected, actual):
                return False
            continue
        if not isinstance(expected, list):
            raise TemplateError(f"pattern field {key!r} must be a list or an object")
        values = actual if isinstance(actual, list) else [actual]
        if not any(_value_matches(m, v, present) for m in expected for v in values):
            return False
    return True


def _value_matches(matcher: Any, value: Any, present: bool) -> bool:
    if isinstance(matcher, dict):
        if "prefix" in matcher:
            return present and isinstance(value, str) and value.startswith(str(matcher["prefix"]))
        if "suffix" in matcher:
            return present and isinstance(value, str) and value.endswith(str(matcher["suffix"]))
        if "exists" in matcher:
            return present == bool(matcher["exists"])
        if "anything-but" in matcher:
            excluded = matcher["anything-but"]
            excluded = excluded if isinstance(excluded, list) else [excluded]
            return present and value not in excluded
        raise TemplateError(f"unsupported pattern matcher {matcher!r}")
    return present and value == matcher


# ------------------------------------------------------------------ sam local invoke


SAM_LOCAL_ENV_PATH = ROOT / "local" / "sam-local-env.json"
# From a SAM container, the host's loopback: Docker Desktop's name (on Linux add
# `--add-host host.docker.internal:host-gateway`, or use `--docker-network host` and 127.0.0.1).
SAM_LOCAL_ENDPOINT = "http://host.docker.internal:5000"
LOCAL_WS_URL = "ws://127.0.0.1:3001/"


def sam_local_env(
    template: Template | None = None, endpoint_url: str = SAM_LOCAL_ENDPOINT
) -> dict[str, dict[str, str]]:
    """``sam local invoke --env-vars`` file content: each function's local environment, pointed at the AWS
    endpoint of ``make dev`` (SAM alone would leave ``!Ref Table`` as the logical id)."""
    template = template or Template.load()
    out: dict[str, dict[str, str]] = {}
    for logical_id, spec in sorted(template.functions().items()):
        env = dict(sorted(spec.environment.items()))
        env["STEPGRAPH_API_KEY"] = "local-dev-key"
        env["AWS_ENDPOINT_URL"] = endpoint_url
        if "STEPGRAPH_WS_URL" in env:  # as a browser on the host reaches make dev's WebSocket API
            env["STEPGRAPH_WS_URL"] = LOCAL_WS_URL
        out[logical_id] = env
    return out


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--sam-env"]:
        sys.exit("usage: python -m local.template --sam-env > local/sam-local-env.json")
    print(json.dumps(sam_local_env(), indent=2))
