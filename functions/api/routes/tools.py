"""``GET /tools`` and ``GET /tools/{name}``: the registry's tools with their param JSON schemas."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.models import ToolInfo, ToolList, error_responses
from functions.errors import NotFoundError

router = APIGatewayRouter()


@router.get("/tools", summary="List the tools", tags=["tools"], responses=error_responses())
def list_tools() -> ToolList:
    from functions.executor.tools import registry

    return ToolList(tools=[ToolInfo.model_validate(t) for t in registry.describe_all()])


@router.get("/tools/<name>", summary="Describe one tool", tags=["tools"], responses=error_responses(404))
def get_tool(name: str) -> ToolInfo:
    from functions.executor.tools import registry

    if name not in registry.names():
        raise NotFoundError(f"unknown tool {name!r}")
    return ToolInfo.model_validate(registry.describe(name))
