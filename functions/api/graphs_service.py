"""Graph operations behind the routes: validate, compile, create state machines, publish versions.

Every graph version gets its own state machine, so a run started on version 1 keeps running version 1's
definition after ``PUT`` publishes version 2: version 1 is ``<prefix>-<graph_id>``, version n > 1 is
``<prefix>-<graph_id>-v<n>``. (Step Functions' own versions would do the same in AWS, but moto cannot
start an execution of a version; per-version state machines behave the same in both.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.errors import ConflictError, QuotaError, UpstreamError
from functions.names import state_machine_name
from functions.store.graphs import GraphHead, GraphVersion, new_graph_id
from functions.store.table import now_iso
from statemachine.errors import LimitError, SpecError
from statemachine.status import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.api.services import Services
    from functions.store.tools import ToolVersion
    from statemachine.plan import Plan
    from statemachine.spec import GraphSpec


def validate(
    spec: dict[str, Any], services: Services | None = None, registered: list[ToolVersion] | None = None
) -> GraphSpec:
    """The checked spec; ``SpecError`` (422) with details otherwise.

    With ``services``, nodes may name registered tools: their params are checked against the tools' JSON
    Schemas, and the spec returned calls each tool's latest published function version directly
    (``lambda:<function ARN>:<version>``), so the graph keeps running that version until it is updated.
    ``registered`` gives those tools when the caller has read them already (``registered_tools``).
    """
    from functions.executor.tools import registry
    from statemachine.validation import validate as validate_spec

    if registered is None:
        registered = registered_tools(services, spec) if services is not None else []
    if not registered:
        return validate_spec(spec, registry)
    from functions.api.tools_service import Catalog, CompiledCatalog

    validate_spec(spec, Catalog(registered))
    by_name = {v.name: v for v in registered}
    settings = services.settings if services is not None else None
    assert settings is not None
    nodes, targets = [], set()
    for node in spec["nodes"]:
        found = by_name.get(str(node.get("tool"))) if isinstance(node, dict) else None
        if found is not None:
            arn = f"arn:aws:lambda:{settings.region}:{settings.account_id}:function:{found.qualified_name}"
            node = {**node, "tool": f"lambda:{arn}"}
            targets.add(arn)
        nodes.append(node)
    return validate_spec({**spec, "nodes": nodes}, CompiledCatalog(targets))


def registered_tools(services: Services, spec: Any) -> list[ToolVersion]:
    """The latest versions of the registered tools the spec's nodes name."""
    from functions.api.tools_service import tool_names
    from functions.executor.tools import registry

    builtin = set(registry.names())
    wanted = sorted(n for n in tool_names(spec) if n not in builtin and not n.startswith("lambda:"))
    return [v for v in (services.tools.find(n) for n in wanted) if v is not None]


def compile_definition(spec: GraphSpec, executor_arn: str) -> dict[str, Any]:
    from statemachine.compiler import compile_graph

    return compile_graph(spec, executor_arn=executor_arn, comment=f"stepgraph: {spec.name}")


def plan_of(spec: GraphSpec, definition: dict[str, Any]) -> Plan:
    """What a run of the compiled graph costs and how close it comes to AWS's limits."""
    from statemachine.plan import plan_of as plan_definition

    return plan_definition(definition, workflow_type=spec.options.workflow_type)


def diagram(spec: GraphSpec) -> str:
    from statemachine.diagram import mermaid

    return mermaid(spec)


def sha256(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _validate_definition(services: Services, text: str, spec: GraphSpec) -> None:
    """Step Functions' own check of the compiled definition (``ValidateStateMachineDefinition``) before anything
    is created: its diagnostics become a 422, as does a definition over its size limit."""
    try:
        checked = services.sfn.validate_state_machine_definition(definition=text, type=spec.options.workflow_type)
    except ClientError as exc:
        error = exc.response["Error"]
        if error.get("Code") == "ValidationException":
            raise LimitError(
                "Step Functions refused the compiled definition",
                [{"loc": ["definition"], "message": error.get("Message", ""), "bytes": len(text.encode())}],
            ) from exc
        raise UpstreamError(f"ValidateStateMachineDefinition failed: {error.get('Code', '')}") from exc
    if checked["result"] != "OK":
        raise SpecError(
            "Step Functions' validator refused the compiled definition",
            [
                {"loc": ["definition", d.get("location", "")], "message": d["message"], "code": d["code"]}
                for d in checked["diagnostics"]
            ],
        )


def _create_state_machine(
    services: Services, name: str, definition: dict[str, Any], spec: GraphSpec, graph_id: str, version: int
) -> str:
    from statemachine.compiler import definition_json

    settings = services.settings
    text = definition_json(definition)
    _validate_definition(services, text, spec)
    try:
        created = services.sfn.create_state_machine(
            name=name,
            definition=text,
            roleArn=settings.states_role_arn,
            type=spec.options.workflow_type,
            loggingConfiguration=settings.logging_configuration(),
            tracingConfiguration={"enabled": settings.tracing},
            tags=[
                {"key": "stepgraph:graph_id", "value": graph_id},
                {"key": "stepgraph:version", "value": str(version)},
            ],
        )
    except ClientError as exc:
        code = exc.response["Error"].get("Code", "")
        if code == "StateMachineAlreadyExists":
            raise ConflictError(f"state machine {name} already exists") from exc
        if code == "StateMachineLimitExceeded":
            raise QuotaError(
                "the account's quota of state machines in this Region is used up (Step Functions:"
                " StateMachineLimitExceeded); each graph version has one: delete graphs no longer needed, or ask"
                " AWS to raise the quota"
            ) from exc
        raise UpstreamError(f"CreateStateMachine failed: {code}") from exc
    return str(created["stateMachineArn"])


def _delete_state_machine(services: Services, arn: str) -> None:
    with contextlib.suppress(ClientError):
        services.sfn.delete_state_machine(stateMachineArn=arn)


def create_graph(services: Services, raw: dict[str, Any]) -> GraphVersion:
    """Validate, compile, create the state machine and record version 1."""
    return _publish(services, new_graph_id(), 1, raw, services.graphs.create)


def publish_version(services: Services, graph_id: str, raw: dict[str, Any]) -> GraphVersion:
    """Validate and compile ``raw`` as the graph's next version, on a state machine of its own."""
    head = services.graphs.get(graph_id)
    return _publish(services, graph_id, head.latest_version + 1, raw, services.graphs.add_version)


def _publish(
    services: Services, graph_id: str, number: int, raw: dict[str, Any], record: Callable[[GraphVersion], Any]
) -> GraphVersion:
    """Validate, compile, create version ``number``'s state machine and record it (undone if recording fails)."""
    tools = registered_tools(services, raw)
    spec = validate(raw, services, tools)
    definition = compile_definition(spec, services.settings.executor_arn)
    plan = plan_of(spec, definition)
    plan.check()  # a graph AWS could not run is refused (422) before anything is created
    _pin_tools(services, graph_id, tools)
    arn = _create_state_machine(
        services, state_machine_name(services.settings.prefix, graph_id, number), definition, spec, graph_id, number
    )
    version = GraphVersion(
        graph_id=graph_id,
        version=number,
        spec=raw,
        definition_sha256=sha256(definition),
        state_machine_arn=arn,
        created_at=now_iso(),
        plan=plan.to_dict(),
    )
    try:
        record(version)
    except Exception:
        _delete_state_machine(services, arn)
        raise
    return version


def _pin_tools(services: Services, graph_id: str, tools: list[ToolVersion]) -> None:
    """Pin the registered tools the graph uses, then check none is being deleted (409 if one is): a deletion
    that starts after this check sees the pins (``functions.store.tools``)."""
    for tool in tools:
        services.tools.pin(tool.name, graph_id)
    for tool in tools:
        if not services.tools.usable(tool.name):
            raise ConflictError(f"tool {tool.name!r} was deleted or is being deleted; the graph was not saved")


def delete_graph(services: Services, graph_id: str) -> GraphHead:
    """Hide the graph, cancel its running runs, delete its schedules, then delete its state machines.

    Step Functions would end a deleted machine's executions at their next state transition (FAILED,
    ``States.Runtime``) and leave one in a Wait state or a long task running; cancelling first ends them
    CANCELLED, recorded, at once.
    """
    from functions.api import schedules_service
    from functions.api.errors import logger
    from functions.api.runs_service import cancel_run

    head = services.graphs.get(graph_id)
    services.graphs.mark_deleted(graph_id)
    # Read after hiding it: a version published until then is listed, and one after cannot move the head (its
    # publish fails and deletes its own state machine).
    versions = services.graphs.versions(graph_id)
    cursor: str | None = None
    for _ in range(1000):
        running, cursor = services.runs.list_runs(graph_id=graph_id, status=RunStatus.RUNNING, limit=100, cursor=cursor)
        for run in running:
            try:
                cancel_run(services, run.run_id)
            except ConflictError:
                pass  # it ended meanwhile, or is still starting (the state machine's deletion ends it)
            except UpstreamError:
                # Deleting the state machines below ends it too; stopping here would leave the graph half deleted.
                logger.warning("could not cancel a run of a deleted graph", extra={"run_id": run.run_id})
        if cursor is None:
            break
    schedules_service.delete_all(services, graph_id)  # before the machines: no fire finds one gone
    for version in versions:
        _delete_state_machine(services, version.state_machine_arn)
    return head


def plan_for_version(services: Services, version: GraphVersion) -> dict[str, Any]:
    """The version's stored plan (computed again for versions published before plans were stored)."""
    if version.plan is not None:
        return version.plan
    spec = validate(version.spec, services)
    return plan_of(spec, compile_definition(spec, services.settings.executor_arn)).to_dict()


def definition_of(services: Services, version: GraphVersion) -> dict[str, Any]:
    """The ASL the version's state machine runs (from Step Functions, the source of truth)."""
    try:
        described = services.sfn.describe_state_machine(stateMachineArn=version.state_machine_arn)
    except ClientError as exc:
        raise UpstreamError(f"DescribeStateMachine failed: {exc.response['Error'].get('Code')}") from exc
    return dict(json.loads(described["definition"]))
