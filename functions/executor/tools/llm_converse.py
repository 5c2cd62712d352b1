"""``llm.converse``: one call to a language model on Amazon Bedrock through the Converse API.

Throttling is not retried here: the client makes one attempt and the error (``Bedrock.ThrottlingException``)
goes to the node's Task state, whose ``Retry`` retries it natively (``statemachine.protocol.TOOL_SERVICE_RETRY``).
Locally the local cloud answers Converse with a deterministic stand-in model (``local/bedrock.py``), and
the output's ``answered_by`` names it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from functions.executor.tools import _models
from functions.executor.tools.base import StrictParams, ToolError

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext
    from functions.settings import Settings

NAME = "llm.converse"
DESCRIPTION = "Ask a language model on Amazon Bedrock (Converse API); text or JSON output, with token usage."

STAND_IN_HEADER = "x-stepgraph-stand-in"
"""Set on responses of the local cloud's stand-in model, whose name then replaces the model id in the output."""

_client: tuple[Any, Any] | None = None


class Params(StrictParams):
    prompt: str = Field(min_length=1, description="The user message; may hold {{ references }}.")
    system: str | None = Field(default=None, description="An optional system prompt.")
    model_id: str = Field(
        default_factory=_models.default_model_id,
        description="A Bedrock model id from the price table (GET /tools/llm.converse lists them).",
    )
    max_tokens: int = Field(default=512, ge=1, le=8192, description="The most tokens the model may write.")
    temperature: float = Field(default=0.0, ge=0.0, le=1.0, description="Sampling temperature.")
    output: Literal["text", "json"] = Field(
        default="text", description='"json": the answer is parsed as JSON (and checked against `schema`).'
    )
    schema_: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="A JSON Schema the parsed JSON answer must match (output json only).",
    )

    @field_validator("model_id")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in _models.model_ids():
            raise ValueError(f"unknown model id {value!r}; known: {', '.join(_models.model_ids())}")
        return value

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _models.check_schema(value)
        return value

    @model_validator(mode="after")
    def _schema_needs_json(self) -> Params:
        if self.schema_ is not None and self.output != "json":
            raise ValueError('schema applies to output "json" only')
        return self


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class Output(BaseModel):
    text: str = Field(description="The model's answer as text.")
    json_: Any = Field(default=None, alias="json", description="The parsed answer (output json), else null.")
    stop_reason: str | None = Field(description="Why the model stopped (end_turn, max_tokens, ...).")
    model_id: str = Field(description="The model asked (its price makes the run's cost estimate).")
    answered_by: str = Field(description="Who answered: the model id on AWS; locally the stand-in, named as such.")
    usage: Usage


class LlmError(ToolError):
    """A Converse call failed; ``code`` is ``Bedrock.<error code>`` so Retry and Catch can match it."""


class BadModelOutput(ToolError):
    """The model's JSON answer did not parse or broke the schema."""

    code = "BadModelOutput"


def _bedrock(settings: Settings) -> Any:
    """The bedrock-runtime client for these settings, made on first use; one attempt per call (Step
    Functions retries). Re-read settings (a new local cloud) get a new client."""
    global _client
    cached = _client
    if cached is None or cached[0] is not settings:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "bedrock-runtime",
            region_name=settings.region,
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=120),
        )
        cached = _client = (settings, client)
    return cached[1]


def _request(params: Params) -> dict[str, Any]:
    request: dict[str, Any] = {
        "modelId": params.model_id,
        "messages": [{"role": "user", "content": [{"text": params.prompt}]}],
        "inferenceConfig": {"maxTokens": params.max_tokens, "temperature": params.temperature},
    }
    system = params.system or ""
    if params.output == "json":
        hint = "Answer with one JSON value only, no prose."
        if params.schema_ is not None:
            hint += f" It must match this JSON Schema: {json.dumps(params.schema_, separators=(',', ':'))}"
        system = f"{system}\n\n{hint}".strip()
    if system:
        request["system"] = [{"text": system}]
    return request


def _parse_json(text: str, schema: dict[str, Any] | None) -> Any:
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise BadModelOutput(f"the model's answer is not JSON: {exc}") from None
    except RecursionError:
        raise BadModelOutput("the model's JSON answer nests too deep to parse") from None
    if schema is not None:
        problem = _models.schema_problem(value, schema)
        if problem:
            raise BadModelOutput(f"the model's JSON answer breaks the schema: {problem}")
    return value


def run(params: Params, ctx: ToolContext) -> Output:
    from botocore.exceptions import ClientError

    try:
        response = _bedrock(ctx.settings).converse(**_request(params))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code") or "ClientError"
        raise LlmError(f"Bedrock {code}: {error.get('Message') or exc}", code=f"Bedrock.{code}") from None
    content = response.get("output", {}).get("message", {}).get("content") or []
    text = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    usage = response.get("usage") or {}
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    stand_in = headers.get(STAND_IN_HEADER)
    answered_by = (
        f"{stand_in} (local stand-in for {params.model_id}, not a language model)" if stand_in else params.model_id
    )
    ctx.log(f"{answered_by}: {usage.get('inputTokens', 0)} tokens in, {usage.get('outputTokens', 0)} out")
    return Output.model_validate(
        {
            "text": text,
            "json": _parse_json(text, params.schema_) if params.output == "json" else None,
            "stop_reason": response.get("stopReason"),
            "model_id": params.model_id,
            "answered_by": answered_by,
            "usage": {"input_tokens": usage.get("inputTokens", 0), "output_tokens": usage.get("outputTokens", 0)},
        }
    )
