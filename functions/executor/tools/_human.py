"""What the two people-in-the-loop tools share: their answers' shapes and the check of ``human.input``'s schema.

A person's step never runs in the executor: it compiles to a ``.waitForTaskToken`` Task, the executor
records the node ``WAITING``, and ``POST /runs/{id}/nodes/{node}/respond`` hands the answer to Step Functions.
These modules describe the tools (``GET /tools``), check their params when a graph is created and check an
answer before it is sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.errors import ToolError

MAX_PROMPT_CHARS = 4000
MAX_COMMENT_CHARS = 4000
MAX_ANSWER_BYTES = 64 * 1024
"""An answer travels in SendTaskSuccess's output and then in the run's document (256 KiB with the rest)."""


class NotRun(ToolError):
    """A person's step was asked to run like a tool (only a ``.waitForTaskToken`` Task waits for it)."""

    code = "stepgraph.InvalidRequest"


def not_run(name: str) -> ToolError:
    return NotRun(f"{name} waits for a person's answer (POST /runs/{{id}}/nodes/{{node}}/respond); it is not run")


class ApprovalAnswer(BaseModel):
    """The body of a respond to ``human.approval``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    approved: bool
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)


class InputAnswer(BaseModel):
    """The body of a respond to ``human.input``: ``input`` is checked against the node's ``schema``."""

    model_config = ConfigDict(extra="forbid")

    input: Any


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` if it is a JSON Schema (its own ``$schema`` draft, else 2020-12) that can be applied here
    (``statemachine.schemas.check``); ValueError otherwise."""
    from statemachine.schemas import check

    check(schema)
    return schema


def schema_problems(schema: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    """Where ``value`` breaks ``schema``: ``[{"loc": "input.<path>", "message"}]`` in path order."""
    from statemachine.schemas import errors

    found = []
    for err in sorted(errors(schema, value), key=lambda e: [str(p) for p in e.absolute_path]):
        loc = ".".join(["input", *(str(p) for p in err.absolute_path)])
        found.append({"loc": loc, "message": err.message})
    return found


def shape_problems(model: type[BaseModel], body: Any) -> list[dict[str, Any]]:
    """Where a respond body does not have the shape ``model`` asks for (empty when it does)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        return [
            {"loc": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
    return []
