"""The graph spec (body of ``POST /graphs``) as pydantic v2 models, exactly as DESIGN.md describes it.

The models check shapes and field ranges only; graph-level rules (unique ids, edges, references,
conditions, cycles, limits, tool params) live in :mod:`statemachine.validation`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NODE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
RESERVED_IDS = frozenset({"input", "state", "item"})
"""Roots of reference paths; a node cannot take these ids."""

MAX_NODES = 500
MAX_EDGES = 2000
MAX_BODY_BYTES = 256 * 1024
"""Spec body size limit; checked by the API on the raw body (413), kept here with the other limits."""

DEFAULT_MAX_CONCURRENCY = 10
DEFAULT_TIMEOUT_SECONDS = 60
MAX_TIMEOUT_SECONDS = 99_999_999
MAX_RETRY_ATTEMPTS = 99_999_999
MAX_DELAY_SECONDS = 31_622_400
"""ASL's bounds: ``MaxDelaySeconds`` at most 31,622,400 (one year)."""
EXECUTOR_TIMEOUT_SECONDS = 900
"""The executor Lambda's ``Timeout`` in template.yaml (a test keeps the two equal)."""
EXECUTOR_MARGIN_SECONDS = 10
"""Time the executor needs around a tool call (reading the request, recording the node)."""
MAX_TOOL_TIMEOUT_SECONDS = EXECUTOR_TIMEOUT_SECONDS - EXECUTOR_MARGIN_SECONDS
"""The longest timeout a built-in tool node may have: a longer one would be cut by the executor's own timeout."""

MAX_CACHE_TTL_SECONDS = 30 * 86400
"""The longest a node may reuse a cached output (30 days, the default run retention: entries go with their run)."""
HUMAN_TOOL_PREFIX = "human."
"""Tools that wait for a person (``human.approval``, ``human.input``): their answers are never cached."""
HUMAN_TOOLS = frozenset({"human.approval", "human.input"})
"""Tools that wait for a person: compiled to a ``.waitForTaskToken`` Task, answered by the respond route."""
HUMAN_DEFAULT_TIMEOUT_SECONDS = 86_400
"""How long a person has to answer when the node sets no ``timeout_seconds`` (the graph's default timeout is
for tools, which run seconds; a person answers in hours)."""

Jitter = Literal["FULL", "NONE"]
WorkflowType = Literal["STANDARD", "EXPRESS"]


class _Model(BaseModel):
    # defer_build: a model's validator is built when first used, so the executor (which reads only
    # RetryPolicy) never builds the graph's models, and the API builds them on the first graph it reads.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False, defer_build=True)


class RetryPolicy(_Model):
    """A node's retry policy; unset fields fall back to ``options.default_retry``, then to :data:`RETRY_DEFAULTS`.

    ``max_attempts`` counts retries after the first attempt, as ASL's ``MaxAttempts`` does (0: no retry).
    """

    max_attempts: int | None = Field(default=None, ge=0, le=MAX_RETRY_ATTEMPTS)
    interval_seconds: int | None = Field(default=None, ge=1, le=MAX_DELAY_SECONDS)
    backoff_rate: float | None = Field(default=None, ge=1.0, le=1000.0)
    max_delay_seconds: int | None = Field(default=None, ge=1, le=MAX_DELAY_SECONDS)
    jitter: Jitter | None = None

    def merged_over(self, base: RetryPolicy) -> RetryPolicy:
        """This policy with its unset fields taken from ``base`` (``base`` itself when this one sets none)."""
        fields = self.model_dump(exclude_none=True)
        return base.model_copy(update=fields) if fields else base  # both validated: no need to again


RETRY_DEFAULTS = RetryPolicy(max_attempts=0, interval_seconds=1, backoff_rate=2.0, jitter="NONE")


class CachePolicy(_Model):
    """``cache`` on a node: reuse the output of an earlier run of the same tool version with the same resolved
    params, if it finished at most ``ttl_seconds`` ago (strict: a whole number of seconds, no other keys)."""

    ttl_seconds: int = Field(ge=1, le=MAX_CACHE_TTL_SECONDS, strict=True)


class Options(_Model):
    """Graph-wide options."""

    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1, le=1000)
    default_timeout_seconds: int = Field(default=DEFAULT_TIMEOUT_SECONDS, ge=1, le=MAX_TIMEOUT_SECONDS)
    default_retry: RetryPolicy = Field(default_factory=RetryPolicy)
    workflow_type: WorkflowType = "STANDARD"


class Node(_Model):
    """One step of the graph: a tool (or ``lambda:<name or ARN>``) with params that may hold references."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    tool: str = Field(min_length=1, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)
    optional: bool = False
    foreach: str | None = None
    max_concurrency: int | None = Field(default=None, ge=0, le=1000)
    update_state: bool | dict[str, str] = False
    cache: CachePolicy | None = None

    @property
    def is_lambda(self) -> bool:
        """True for a user's own Lambda (``lambda:<name or ARN>``)."""
        return self.tool.startswith("lambda:")

    @property
    def is_human(self) -> bool:
        """True for a step that waits for a person's answer (``human.approval``, ``human.input``)."""
        return self.tool in HUMAN_TOOLS


class Edge(_Model):
    """``from`` → ``to``; ``when`` is a condition, ``map`` shorthand for references, ``max_iterations`` a loop bound."""

    from_: str = Field(alias="from")
    to: str
    when: str | None = None
    map: dict[str, str] | None = None
    max_iterations: int | None = Field(default=None, ge=1, le=10_000)

    @property
    def key(self) -> str:
        """How errors and diagrams name the edge: ``a->b``."""
        return f"{self.from_}->{self.to}"


class GraphSpec(_Model):
    """The whole graph as a user POSTs it."""

    name: str = Field(min_length=1, max_length=128)
    description: str | None = Field(default=None, max_length=2048)
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)
    options: Options = Field(default_factory=Options)

    def node(self, node_id: str) -> Node:
        """The node with this id (KeyError if none)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def retry_for(self, node: Node) -> RetryPolicy:
        """The node's policy merged with ``options.default_retry`` and the built-in defaults."""
        base = self.options.default_retry.merged_over(RETRY_DEFAULTS)
        return node.retry.merged_over(base) if node.retry else base

    def timeout_for(self, node: Node) -> int:
        """The node's timeout, or ``options.default_timeout_seconds`` (a person's step: a day)."""
        if node.is_human:
            return node.timeout_seconds or HUMAN_DEFAULT_TIMEOUT_SECONDS
        return node.timeout_seconds or self.options.default_timeout_seconds
