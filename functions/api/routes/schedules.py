"""Schedule routes: a graph's schedules (EventBridge Scheduler in AWS, the local cloud's scheduler locally)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import schedules_service as service
from functions.api.models import CreateSchedule, ScheduleDeleted, ScheduleList, ScheduleView, error_responses
from functions.api.routes.params import GraphId, ScheduleId  # noqa: TC001 - Powertools reads route annotations at runtime
from functions.api.services import get_services

router = APIGatewayRouter()


@router.post(
    "/graphs/<graph_id>/schedules",
    summary="Start runs of the graph's latest version on a timetable (rate, cron or at, in a time zone)",
    tags=["schedules"],
    status_code=201,
    responses=error_responses(400, 404, 413, 415, 422, ok=201, description="created"),
)
def create_schedule(graph_id: GraphId, body: Annotated[CreateSchedule, Body()]) -> ScheduleView:
    """422 for an expression or time zone EventBridge Scheduler would refuse (`details` give the field and the
    column), or when the graph already has the most schedules it may have."""
    created = service.create_schedule(get_services(), graph_id, body.expression, body.timezone, body.input)
    return ScheduleView(**created)


@router.get(
    "/graphs/<graph_id>/schedules",
    summary="A graph's schedules, with each one's next fire time",
    tags=["schedules"],
    responses=error_responses(404),
)
def list_schedules(graph_id: GraphId) -> ScheduleList:
    return ScheduleList(schedules=[ScheduleView(**s) for s in service.list_schedules(get_services(), graph_id)])


@router.delete(
    "/graphs/<graph_id>/schedules/<schedule_id>",
    summary="Delete a schedule (runs it started are kept)",
    tags=["schedules"],
    responses=error_responses(404),
)
def delete_schedule(graph_id: GraphId, schedule_id: ScheduleId) -> ScheduleDeleted:
    removed = service.delete_schedule(get_services(), graph_id, schedule_id)
    return ScheduleDeleted(graph_id=removed.graph_id, schedule_id=removed.schedule_id)
