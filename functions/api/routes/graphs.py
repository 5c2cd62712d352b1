"""Graph routes: create, validate (dry run), list, get, update (new version), delete, definition, diagram
(Mermaid text, or the SVG picture the console colours by node status)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, PlainValidator

from functions.api import graphs_service as service
from functions.api.models import (
    Definition,
    Diagram,
    GraphCreated,
    GraphDeleted,
    GraphDetail,
    GraphList,
    GraphPlan,
    GraphSummary,
    ValidationResult,
    VersionInfo,
    error_responses,
)
from functions.api.routes.params import GraphId  # noqa: TC001 - Powertools reads route annotations at runtime
from functions.api.services import get_services
from functions.errors import NotFoundError
from functions.names import console_url_for_state_machine
from statemachine.errors import SpecError
from statemachine.spec import GraphSpec

router = APIGatewayRouter()

VersionQuery = Annotated[int | None, Query(ge=1, le=1_000_000, description="a version; the latest if absent")]


class SpecDraft(BaseModel):
    """Any JSON object: a graph spec to check (the answer lists what is wrong with it)."""

    model_config = ConfigDict(extra="allow")

    name: Any = None
    description: Any = None
    nodes: Any = None
    edges: Any = None
    options: Any = None


def _spec_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("a graph spec is a JSON object")
    return value


SpecBody = Annotated[dict[str, Any], PlainValidator(_spec_object, json_schema_input_type=GraphSpec)]
"""A graph spec as sent (the OpenAPI document shows ``GraphSpec``): the route validates it once, through
``graphs_service.validate``, so a bad spec is answered with the validator's own details."""


def _raw_body() -> dict[str, Any]:
    body = router.current_event.json_body
    return body if isinstance(body, dict) else {}


def _created(version: Any) -> GraphCreated:
    region = get_services().settings.region
    return GraphCreated(
        graph_id=version.graph_id,
        version=version.version,
        state_machine_arn=version.state_machine_arn,
        console_url=console_url_for_state_machine(version.state_machine_arn, region),
        plan=GraphPlan.model_validate(version.plan) if version.plan else None,
    )


@router.post(
    "/graphs/validate",
    summary="Dry run: validate and compile without creating anything",
    tags=["graphs"],
    responses=error_responses(400, 413, 415),
)
def validate_graph(spec: Annotated[SpecDraft, Body()]) -> ValidationResult:
    raw = _raw_body()
    try:
        checked = service.validate(raw, get_services())
    except SpecError as exc:
        details = exc.details or [{"loc": "", "message": exc.message}]
        return ValidationResult(valid=False, errors=details)
    definition = service.compile_definition(checked, get_services().settings.executor_arn)
    plan = service.plan_of(checked, definition)
    problems = plan.problems()  # AWS limits the worst case breaks: POST /graphs would answer 422
    return ValidationResult(
        valid=not problems,
        errors=problems,
        definition=definition,
        diagram=service.diagram(checked),
        plan=GraphPlan.model_validate(plan.to_dict()),
    )


@router.post(
    "/graphs",
    summary="Create a graph: validate, compile, create its state machine",
    tags=["graphs"],
    status_code=201,
    responses=error_responses(400, 413, 415, 422, ok=201, description="created"),
)
def create_graph(spec: Annotated[SpecBody, Body()]) -> GraphCreated:
    return _created(service.create_graph(get_services(), spec))


@router.get("/graphs", summary="List graphs, newest first", tags=["graphs"], responses=error_responses(400))
def list_graphs(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(alias="next", max_length=2048, description="cursor from a page")] = None,
) -> GraphList:
    heads, following = get_services().graphs.list_graphs(limit=limit, cursor=cursor)
    return GraphList(graphs=[GraphSummary.model_validate(h, from_attributes=True) for h in heads], next=following)


@router.get(
    "/graphs/<graph_id>",
    summary="A graph: its latest spec and every version",
    tags=["graphs"],
    responses=error_responses(404),
)
def get_graph(graph_id: GraphId) -> GraphDetail:
    services = get_services()
    head = services.graphs.get(graph_id)
    versions = [v for v in services.graphs.versions(graph_id) if v.version <= head.latest_version]
    latest = next((v for v in versions if v.version == head.latest_version), versions[-1] if versions else None)
    region = services.settings.region
    return GraphDetail(
        **GraphSummary.model_validate(head, from_attributes=True).model_dump(),
        spec=latest.spec if latest else {},
        plan=GraphPlan.model_validate(service.plan_for_version(services, latest)) if latest else None,
        versions=[
            VersionInfo(
                version=v.version,
                created_at=v.created_at,
                state_machine_arn=v.state_machine_arn,
                definition_sha256=v.definition_sha256,
                console_url=console_url_for_state_machine(v.state_machine_arn, region),
            )
            for v in versions
        ],
    )


@router.put(
    "/graphs/<graph_id>",
    summary="Publish a new version of a graph (runs keep the version they started on)",
    tags=["graphs"],
    responses=error_responses(400, 404, 409, 413, 415, 422),
)
def update_graph(graph_id: GraphId, spec: Annotated[SpecBody, Body()]) -> GraphCreated:
    return _created(service.publish_version(get_services(), graph_id, spec))


@router.delete(
    "/graphs/<graph_id>",
    summary="Delete a graph and its state machines",
    tags=["graphs"],
    responses=error_responses(404),
)
def delete_graph(graph_id: GraphId) -> GraphDeleted:
    head = service.delete_graph(get_services(), graph_id)
    return GraphDeleted(graph_id=head.graph_id)


def _version(graph_id: str, version: int | None) -> Any:
    services = get_services()
    head = services.graphs.get(graph_id)
    number = version or head.latest_version
    if number > head.latest_version:
        raise NotFoundError(f"graph {graph_id!r} has no version {number}")
    return services.graphs.version(graph_id, number)


@router.get(
    "/graphs/<graph_id>/definition",
    summary="The compiled ASL of a version",
    tags=["graphs"],
    responses=error_responses(404),
)
def get_definition(graph_id: GraphId, version: VersionQuery = None) -> Definition:
    found = _version(graph_id, version)
    return Definition(
        graph_id=graph_id,
        version=found.version,
        state_machine_arn=found.state_machine_arn,
        definition=service.definition_of(get_services(), found),
    )


DIAGRAM_RESPONSES: dict[int, Any] = {
    **error_responses(404),
    200: {
        "description": "the diagram: Mermaid text in JSON, or an SVG picture (``format=svg``)",
        "content": {
            "application/json": {"model": Diagram},
            "image/svg+xml": {"schema": {"type": "string"}},
        },
    },
}


@router.get(
    "/graphs/<graph_id>/diagram",
    summary='The diagram of a version: Mermaid (JSON) or SVG, each node a <g data-node="<id>">',
    tags=["graphs"],
    responses=DIAGRAM_RESPONSES,
)
def get_diagram(
    graph_id: GraphId,
    version: VersionQuery = None,
    diagram_format: Annotated[Literal["mermaid", "svg"], Query(alias="format")] = "mermaid",
) -> Response[Any]:
    found = _version(graph_id, version)
    if diagram_format == "svg":
        from statemachine.render import graph_to_svg  # the renderer (and the graph model) only when one is drawn

        return Response(status_code=200, content_type="image/svg+xml", body=graph_to_svg(found.spec))
    spec = GraphSpec.model_validate(found.spec)
    body = Diagram(graph_id=graph_id, version=found.version, diagram=service.diagram(spec))
    return Response(status_code=200, content_type="application/json", body=body.model_dump())
