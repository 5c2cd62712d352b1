"""``/tools``: the built-in tools and the users' registered ones (``POST``/``PUT``/``DELETE``), with their schemas."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import tools_service
from functions.api.models import ToolInfo, ToolList, error_responses
from functions.api.services import get_services
from functions.errors import NotFoundError

router = APIGatewayRouter()


def _body() -> dict[str, Any]:
    body = router.current_event.json_body
    return body if isinstance(body, dict) else {}


def _builtin(described: dict[str, Any]) -> ToolInfo:
    return ToolInfo.model_validate({**described, "kind": "builtin"})


@router.get("/tools", summary="List the tools (built-in and registered)", tags=["tools"], responses=error_responses())
def list_tools() -> ToolList:
    from functions.executor.tools import registry

    services = get_services()
    tools = [_builtin(t) for t in registry.describe_all()]
    for latest in services.tools.list_latest():
        described = tools_service.describe(latest, services.tools.versions(latest.name))
        tools.append(ToolInfo.model_validate(described))
    return ToolList(tools=sorted(tools, key=lambda t: t.name))


@router.get("/tools/<name>", summary="Describe one tool", tags=["tools"], responses=error_responses(404))
def get_tool(name: str) -> ToolInfo:
    from functions.executor.tools import registry

    if name in registry.names():
        return _builtin(registry.describe(name))
    services = get_services()
    latest = services.tools.find(name)
    if latest is None:
        raise NotFoundError(f"unknown tool {name!r}")
    return ToolInfo.model_validate(tools_service.describe(latest, services.tools.versions(name)))


@router.post(
    "/tools",
    summary="Register a Python tool: its own sandboxed function, usable by graphs at once",
    tags=["tools"],
    status_code=201,
    responses=error_responses(400, 409, 413, 422, ok=201, description="registered"),
)
def register_tool() -> Response[dict[str, Any]]:
    created = tools_service.register(get_services(), _body())
    return Response(status_code=201, content_type="application/json", body=created)


@router.put(
    "/tools/<name>",
    summary="Publish a new version of a registered tool (graphs keep theirs until updated)",
    tags=["tools"],
    responses=error_responses(400, 404, 409, 413, 422),
)
def publish_tool(name: str) -> dict[str, Any]:
    return tools_service.publish(get_services(), name, _body())


@router.delete(
    "/tools/<name>",
    summary="Delete a registered tool (409 while graphs use it)",
    tags=["tools"],
    responses=error_responses(404, 409),
)
def delete_tool(name: str) -> dict[str, Any]:
    from functions.executor.tools import registry

    if name in registry.names():
        raise tools_service.ConflictError(f"{name!r} is a built-in tool; it cannot be deleted")
    tools_service.delete(get_services(), name)
    return {"name": name, "deleted": True}
