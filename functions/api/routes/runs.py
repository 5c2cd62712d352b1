"""Run routes: start (idempotent with ``Idempotency-Key``), list, get, events, cancel, resume."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import respond_service
from functions.api import runs_service as service
from functions.api.models import (
    EventPage,
    ItemPage,
    Responded,
    RunDetail,
    RunFilter,
    RunList,
    RunListItem,
    RunResumed,
    RunStarted,
    RunSummary,
    StartRun,
    error_responses,
)
from functions.api.routes.params import GraphId, NodeId, RunId  # noqa: TC001 - Powertools reads route annotations at runtime
from functions.api.services import get_services
from functions.errors import BadRequestError
from functions.store.waits import Waits
from statemachine.status import NodeStatus, RunStatus

router = APIGatewayRouter()


@router.post(
    "/graphs/<graph_id>/runs",
    summary="Start a run of the graph's latest version",
    tags=["runs"],
    status_code=202,
    responses={
        **error_responses(400, 404, 409, 413, 415, 422, ok=202, description="started (still running after `wait`)"),
        200: {"description": "with `wait`: the run ended within it; the run document, as GET /runs/{id}"},
    },
)
def start_run(
    graph_id: GraphId,
    body: Annotated[StartRun, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", min_length=1, max_length=255, description="retries with the same key start one run"
        ),
    ] = None,
    wait: Annotated[
        int | None,
        Query(ge=0, le=service.MAX_WAIT_SECONDS, description="seconds to wait for the run to end (at most 25)"),
    ] = None,
) -> Response[RunStarted | RunDetail]:
    services = get_services()
    if idempotency_key:
        started = service.start_run_idempotently(services, graph_id, body.input, idempotency_key, router.lambda_context)
    else:
        started = service.start_run(services, graph_id, body.input)
    if wait:
        ended = service.wait_for_end(services, started["run_id"], wait)
        if ended is not None:
            return Response(200, content_types.APPLICATION_JSON, RunDetail(**service.detail(services, ended)))
    return Response(202, content_types.APPLICATION_JSON, RunStarted(**started))


@router.get(
    "/runs", summary="List runs, newest first (by graph and status)", tags=["runs"], responses=error_responses(400)
)
def list_runs(
    graph_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    status: Annotated[
        RunFilter | None,
        Query(description="a run status, or WAITING: running runs with a node waiting for a person"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(alias="next", max_length=2048, description="cursor from a page")] = None,
) -> RunList:
    services = get_services()
    if status == NodeStatus.WAITING:
        runs, following = Waits(services.table).list_waiting_runs(
            services.runs, graph_id=graph_id, limit=limit, cursor=cursor
        )
    else:
        runs, following = services.runs.list_runs(graph_id=graph_id, status=status, limit=limit, cursor=cursor)
    return RunList(runs=[RunListItem(**item) for item in service.listed(services, runs)], next=following)


@router.get(
    "/runs/<run_id>",
    summary="A run: status, progress, nodes, outputs, state",
    tags=["runs"],
    responses=error_responses(404),
)
def get_run(run_id: RunId) -> RunDetail:
    services = get_services()
    return RunDetail(**service.detail(services, service.get_run(services, run_id)))


@router.get(
    "/runs/<run_id>/events",
    summary="The run's event log, paged by cursor",
    tags=["runs"],
    responses=error_responses(400, 404),
)
def get_events(
    run_id: RunId,
    after: Annotated[
        str | None, Query(max_length=12, description="the `seq` of the last event you have (or `next`); 0 for all")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """Events numbered after ``after``, served as soon as they are numbered. Follow ``next`` until it is
    null: it stays set while the run is RUNNING, and becomes null once the run's final ``RUN_*`` event
    has been served."""
    services = get_services()
    if after not in (None, "") and not after.isdigit():
        raise BadRequestError("after must be the seq number of an event (or the next of a page)")
    start = int(after or 0)
    run = service.get_run(services, run_id)
    events, last, more = services.runs.events(run_id, after=start, limit=limit)
    following: int | None = last
    if not more and run.status != RunStatus.RUNNING:
        terminal = services.runs.terminal_event_seq(run_id)
        if terminal is not None and last >= terminal:
            following = None
    return EventPage(events=events, next=following)  # type: ignore[arg-type]


@router.get(
    "/runs/<run_id>/nodes/<node>/items",
    summary="A foreach node's item results, paged in index order",
    tags=["runs"],
    responses=error_responses(404),
)
def get_items(
    run_id: RunId,
    node: NodeId,
    after: Annotated[
        int | None, Query(ge=0, le=999_999, description="the `next` of the previous page: items after this index")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    iteration: Annotated[
        int | None, Query(ge=1, description="which run of a node in a loop (default: the latest)")
    ] = None,
) -> ItemPage:
    """Each item's status, attempts, timings, output and error. `GET /runs/{id}` inlines a node's output
    only while it is small; a long list of item results is read here instead. Follow `next` until it is
    null; while the node runs, items appear as they finish."""
    services = get_services()
    page = service.item_page(services, run_id, node, iteration=iteration, after=after, limit=limit)
    return ItemPage(**page)


@router.post(
    "/runs/<run_id>/cancel",
    summary="Cancel a running run (409 once it has finished)",
    tags=["runs"],
    responses=error_responses(404, 409),
)
def cancel_run(run_id: RunId) -> RunSummary:
    services = get_services()
    run = service.cancel_run(services, run_id)
    return RunSummary(**service.summary(run, services.settings.region))


@router.post(
    "/runs/<run_id>/nodes/<node>/respond",
    summary="Answer a node waiting for a person (human.approval, human.input)",
    tags=["runs"],
    responses=error_responses(400, 404, 409, 413, 415),
)
def respond(
    run_id: RunId,
    node: NodeId,
    body: Annotated[
        dict[str, Any],
        Body(description='`{"approved": true|false, "comment": "..."}` (human.approval) or `{"input": ...}`'),
    ],
) -> Responded:
    """Resumes the waiting node with the answer: it succeeds with `output`, and the run goes on. 409 when the
    node is not waiting (never did, already answered, timed out) or another answer came first; 422 when the
    answer has the wrong shape or breaks the node's `schema` (details say where)."""
    services = get_services()
    return Responded(**respond_service.respond(services, run_id, node, body))


@router.post(
    "/runs/<run_id>/resume",
    summary="Resume a FAILED, CANCELLED or TIMED_OUT run: nodes that succeeded are not run again",
    tags=["runs"],
    status_code=202,
    responses=error_responses(404, 409, ok=202, description="resumed: the run is RUNNING again under its id"),
)
def resume_run(run_id: RunId) -> Response[RunResumed]:
    """The run continues under the same id as a new execution (``<run_id>-r<n>``, listed in the run's
    ``executions``): nodes that SUCCEEDED keep their outputs and timings, the others run, with the run's
    own input. 409 for a RUNNING or SUCCEEDED run, and for the second of two resumes at once."""
    services = get_services()
    return Response(202, content_types.APPLICATION_JSON, RunResumed(**service.resume_run(services, run_id)))
