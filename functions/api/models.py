"""Request and response models of the HTTP API (the OpenAPI document is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from statemachine.status import NodeStatus, RunStatus


class Model(BaseModel):
    """Base of the API's models. Each builds its validator when first used (a route's first request, or the
    OpenAPI document), not at import: a cold start builds the models of the route it serves, not all fifty."""

    model_config = ConfigDict(defer_build=True)


RunFilter = Literal[
    RunStatus.RUNNING,
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.TIMED_OUT,
    NodeStatus.WAITING,
]
"""``GET /runs?status=``: a run status, or WAITING (RUNNING runs with a node waiting for a person)."""


class ErrorInfo(Model):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorBody(Model):
    """Every error answer: ``details`` name the node, edge, field or position of each problem."""

    error: ErrorInfo


class Health(Model):
    status: Literal["ok"] = "ok"


class ToolInfo(Model):
    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    params_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


class ToolList(Model):
    tools: list[ToolInfo]


class CountRange(Model):
    min: int
    max: int


class CostRange(Model):
    min: float
    max: float


class GraphPlan(Model):
    """What a run costs and how close it comes to AWS's limits, from the spec alone (DESIGN.md)."""

    states: int
    definition_bytes: int
    transitions: CountRange
    lambda_invocations: CountRange
    history_events_max: int
    estimated_cost_usd: CostRange
    assumptions: list[str]


class GraphCreated(Model):
    graph_id: str
    version: int
    state_machine_arn: str
    console_url: str
    plan: GraphPlan | None = None


class ValidationResult(Model):
    valid: bool
    errors: list[dict[str, Any]]
    definition: dict[str, Any] | None = None
    diagram: str | None = None
    plan: GraphPlan | None = None


class GraphSummary(Model):
    graph_id: str
    name: str
    description: str | None = None
    latest_version: int
    created_at: str
    updated_at: str


class GraphList(Model):
    graphs: list[GraphSummary]
    next: str | None = None


class VersionInfo(Model):
    version: int
    created_at: str
    state_machine_arn: str
    definition_sha256: str
    console_url: str


class GraphDetail(GraphSummary):
    spec: dict[str, Any]
    versions: list[VersionInfo]
    plan: GraphPlan | None = None
    """The latest version's plan."""


class GraphDeleted(Model):
    graph_id: str
    deleted: bool = True


class Definition(Model):
    graph_id: str
    version: int
    state_machine_arn: str
    definition: dict[str, Any]


class Diagram(Model):
    graph_id: str
    version: int
    format: Literal["mermaid"] = "mermaid"
    diagram: str


class StartRun(Model):
    """Body of ``POST /graphs/{id}/runs``."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict)


class ApiTrigger(Model):
    """The run was started through the API (``POST /graphs/{id}/runs``)."""

    type: Literal["api"] = "api"


class ScheduleTrigger(Model):
    """The run was started by a schedule, for one of its fire times."""

    type: Literal["schedule"] = "schedule"
    schedule_id: str
    scheduled_time: str = Field(description="the fire time (UTC) the schedule started the run for")


Trigger = Annotated[ApiTrigger | ScheduleTrigger, Field(discriminator="type")]


class RunStarted(Model):
    run_id: str
    graph_id: str
    version: int
    execution_arn: str
    status: RunStatus
    console_url: str
    trigger: Trigger = Field(default_factory=ApiTrigger)


class RunError(Model):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class Progress(Model):
    done: int
    total: int
    percent: int


class OutputOmitted(Model):
    """What of an output was too large to inline in this response: its size and paths (and items' route)."""

    bytes: int = Field(description="the size of what was left out")
    fields: list[str] = Field(description="dotted paths of the output left null; `$` is the whole output")
    reason: str
    items_url: str | None = Field(default=None, description="a foreach node: where its item results are paged")


class NodeView(Model):
    status: NodeStatus
    attempts: int
    iterations: int
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    output: Any = None
    error: RunError | None = None
    tool: str | None = None
    cached: bool = Field(default=False, description="the output was reused from an earlier run (the node's cache)")
    cached_from: dict[str, Any] | None = Field(
        default=None, description="when cached: the result reused, {run_id, node, iteration, finished_at}"
    )
    output_omitted: OutputOmitted | None = None
    items_total: int | None = None
    items_done: int | None = None
    items_cached: int | None = Field(default=None, description="a cached foreach node: items whose output was reused")
    items_url: str | None = Field(default=None, description="a foreach node: where its item results are paged")


class Execution(Model):
    """One Step Functions execution of a run: the first, then one per resume (``<run_id>-r<n>``)."""

    execution_arn: str
    console_url: str
    started_at: str
    finished_at: str | None = None
    status: RunStatus
    error: RunError | None = None


class RunSummary(Model):
    run_id: str
    graph_id: str
    version: int
    status: RunStatus
    execution_arn: str = Field(description="the current execution (the latest resume's, once resumed)")
    console_url: str
    started_at: str
    finished_at: str | None = None
    error: RunError | None = None
    trigger: Trigger = Field(default_factory=ApiTrigger)
    resumes: int = Field(default=0, description="how often the run was resumed (POST /runs/{id}/resume)")
    executions: list[Execution] = Field(default_factory=list, description="every execution, oldest first")


class RunResumed(Model):
    run_id: str
    status: RunStatus
    resumes: int
    execution_arn: str
    console_url: str


class RunListItem(RunSummary):
    progress: Progress


class Usage(Model):
    """What a run's ``llm.converse`` calls used, and their cost by the price table (an estimate)."""

    llm_calls: int
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float


class Waiting(Model):
    """A node waiting for a person's answer (``POST /runs/{id}/nodes/{node}/respond``)."""

    node: str
    tool: str | None = None
    prompt: str | None = Field(default=None, description="what the person is asked, references resolved")
    since: str | None = None


class RunDetail(RunListItem):
    input: Any = None
    state: Any = None
    nodes: dict[str, NodeView]
    usage: Usage | None = Field(default=None, description="What the run's llm.converse calls used (zeros without any).")
    waiting: list[Waiting] = Field(default_factory=list, description="nodes waiting for a person's answer now")


class Respond(Model):
    """Body of ``POST /runs/{id}/nodes/{node}/respond``: ``{"approved", "comment"}`` for ``human.approval``,
    ``{"input"}`` for ``human.input`` (checked against the node's ``schema``)."""

    model_config = ConfigDict(extra="allow")


class Responded(Model):
    """The answer was handed to the waiting node: the run goes on with ``output`` as the node's output."""

    run_id: str
    node: str
    iteration: int
    tool: str
    output: dict[str, Any]


class RunList(Model):
    runs: list[RunListItem]
    next: str | None = None


class Event(Model):
    """One event of a run; failure events add ``error``, a NODE_SUCCEEDED served from the cache ``cached: true``."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(description="1, 2, 3... in the order the run's events happened, no gaps")
    at: str
    type: str
    node: str | None = None
    iteration: int | None = None
    attempt: int | None = None
    message: str = ""


class EventPage(Model):
    events: list[Event]
    next: int | None = Field(
        default=None,
        description="pass as `after` for the next events; null once the run ended and all its events were served",
    )


class ItemView(Model):
    """One item of a ``foreach`` node: its record, output whole (unless ``output_omitted``)."""

    index: int
    status: NodeStatus
    attempts: int
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    output: Any = None
    error: RunError | None = None
    cached: bool = Field(default=False, description="the item's output was reused from an earlier run")
    output_omitted: OutputOmitted | None = None


class ItemPage(Model):
    """A page of a ``foreach`` node's item results, in index order."""

    node: str
    iteration: int | None = None
    total: int | None = Field(default=None, description="items in the node's list (null before it started)")
    done: int = Field(description="items finished so far")
    items: list[ItemView]
    next: int | None = Field(default=None, description="pass as `after` for the next page; null: no more now")


ERROR_TEXT = {
    400: "malformed request (not JSON; NaN, Infinity or a lone surrogate; a cursor this API did not return)",
    401: "missing or wrong API key",
    404: "unknown id",
    409: "conflict with the current state",
    413: "request body over 256 KiB, or run input over 128,000 bytes",
    415: "request body that is not JSON",
    422: "invalid input, or JSON over a limit (nesting 64 deep, integers of 100 digits, finite numbers); "
    "details name the node, edge or field",
}


def error_responses(*codes: int, ok: int = 200, description: str = "success") -> dict[int, Any]:
    """OpenAPI responses of a route: ``ok`` (its model from the return type) and the error statuses it answers
    (401 and 422 always: every such route needs the key and validates its input)."""
    responses: dict[int, Any] = {ok: {"description": description}}
    for code in sorted({401, 422, *codes}):
        responses[code] = {"description": ERROR_TEXT[code], "content": {"application/json": {"model": ErrorBody}}}
    return responses


class CreateSchedule(Model):
    """Body of ``POST /graphs/{id}/schedules``."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=256,
        description="EventBridge Scheduler syntax: rate(5 minutes), cron(0 9 ? * MON-FRI *) or at(2027-01-01T09:00:00)",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="the input of every run it starts")
    timezone: str = Field(default="UTC", min_length=1, max_length=50, description="an IANA time zone name")


class ScheduleView(Model):
    schedule_id: str
    graph_id: str
    expression: str
    timezone: str
    input: dict[str, Any]
    state: Literal["ENABLED", "DISABLED"]
    created_at: str
    next_run_at: str | None = Field(description="the next fire time (UTC); null when it will not fire again")


class ScheduleList(Model):
    schedules: list[ScheduleView]


class ScheduleDeleted(Model):
    graph_id: str
    schedule_id: str
    deleted: bool = True
