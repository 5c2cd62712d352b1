"""Validate a graph spec with precise errors: every problem names its node, edge, field or position.

``validate(spec_dict, catalog)`` returns the :class:`~statemachine.spec.GraphSpec` or raises
:class:`~statemachine.errors.SpecError` (``LimitError`` for the size limits) whose ``details`` list every
problem found, as ``{"loc", "node"?, "edge"?, "position"?, "message"}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from statemachine import conditions, jsonlimits
from statemachine.errors import JsonInputError, LimitError, SpecError, detail_at, loc_text
from statemachine.graph import GraphModel, find_cycle, map_reference
from statemachine.references import ReferenceSyntaxError, iter_references, parse_path, parse_template
from statemachine.spec import (
    EXECUTOR_TIMEOUT_SECONDS,
    HUMAN_TOOL_PREFIX,
    MAX_EDGES,
    MAX_NODES,
    MAX_TOOL_TIMEOUT_SECONDS,
    RESERVED_IDS,
    GraphSpec,
)

if TYPE_CHECKING:
    from statemachine.spec import Edge, Node

Detail = dict[str, Any]


class ToolCatalog(Protocol):
    """What validation needs to know about tools (``functions.executor.tools.registry`` implements it).

    A catalog may also offer ``lambda_problem(function) -> str | None``: why a ``lambda:`` node may not call
    that function (the stack's own functions), checked when it is there.
    """

    def names(self) -> Iterable[str]: ...

    def params_model(self, name: str) -> type[BaseModel] | None: ...


def validate(
    spec_dict: Any,
    catalog: ToolCatalog | None = None,
    *,
    max_nodes: int = MAX_NODES,
    max_edges: int = MAX_EDGES,
) -> GraphSpec:
    """The validated spec; raises :class:`SpecError` / :class:`LimitError` with every problem found."""
    if not isinstance(spec_dict, Mapping):
        raise SpecError("the graph spec must be a JSON object", [{"loc": "", "message": "expected an object"}])
    try:
        jsonlimits.check(spec_dict)  # bounded depth and numbers: every check below may recurse safely
    except JsonInputError as exc:
        raise SpecError(exc.message, exc.details) from None
    nodes_raw, edges_raw = spec_dict.get("nodes"), spec_dict.get("edges")
    if isinstance(nodes_raw, list) and len(nodes_raw) > max_nodes:
        raise LimitError(
            f"the graph has {len(nodes_raw)} nodes; the limit is {max_nodes}",
            [{"loc": "nodes", "message": f"at most {max_nodes} nodes (limit: nodes)"}],
        )
    if isinstance(edges_raw, list) and len(edges_raw) > max_edges:
        raise LimitError(
            f"the graph has {len(edges_raw)} edges; the limit is {max_edges}",
            [{"loc": "edges", "message": f"at most {max_edges} edges (limit: edges)"}],
        )
    try:
        spec = GraphSpec.model_validate(dict(spec_dict))
    except ValidationError as exc:
        raise SpecError("invalid graph spec", _pydantic_details(exc, spec_dict)) from None
    details = _Checker(spec, catalog).run()
    if details:
        first = details[0]["message"]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise SpecError(f"invalid graph spec: {first}{more}", details)
    return spec


def _pydantic_details(exc: ValidationError, raw: Mapping[str, Any]) -> list[Detail]:
    return [detail_at(err["loc"], err["msg"], raw) for err in exc.errors()]


class _Checker:
    def __init__(self, spec: GraphSpec, catalog: ToolCatalog | None) -> None:
        self.spec = spec
        self.catalog = catalog
        self.details: list[Detail] = []
        self.ids: dict[str, int] = {}
        self.tools = frozenset(catalog.names()) if catalog is not None else frozenset()
        """The catalog's tool names, listed once (not once per node)."""

    def add(self, loc: str, message: str, **extra: Any) -> None:
        self.details.append({"loc": loc, **{k: v for k, v in extra.items() if v is not None}, "message": message})

    def run(self) -> list[Detail]:
        spec = self.spec
        if not spec.nodes:
            self.add("nodes", "a graph needs at least one node")
            return self.details
        for i, node in enumerate(spec.nodes):
            if node.id in self.ids:
                self.add(
                    f"nodes[{i}].id",
                    f"duplicate node id {node.id!r} (first at nodes[{self.ids[node.id]}])",
                    node=node.id,
                )
            else:
                self.ids[node.id] = i
            if node.id in RESERVED_IDS:
                self.add(f"nodes[{i}].id", f"{node.id!r} is reserved for references; choose another id", node=node.id)
            self.check_tool(i, node)
            self.check_timeout(i, node)
            self.check_cache(i, node)
            if node.is_human:
                self.check_human(i, node)
            if node.foreach and node.update_state is True:
                self.add(
                    f"nodes[{i}].update_state",
                    'a foreach node outputs a list: update_state needs a mapping such as {"first": "[0]"}, not true',
                    node=node.id,
                )
            if node.max_concurrency is not None and not node.foreach:
                self.add(f"nodes[{i}].max_concurrency", "max_concurrency only applies to foreach nodes", node=node.id)
        pairs: dict[tuple[str, str], int] = {}
        edges_ok = True
        for j, edge in enumerate(spec.edges):
            for end, name in (("from", edge.from_), ("to", edge.to)):
                if name not in self.ids:
                    self.add(f"edges[{j}].{end}", f"edge {edge.key}: unknown node {name!r}", edge=edge.key)
                    edges_ok = False
            if (edge.from_, edge.to) in pairs:
                self.add(
                    f"edges[{j}]",
                    f"duplicate edge {edge.key} (first at edges[{pairs[(edge.from_, edge.to)]}])",
                    edge=edge.key,
                )
            pairs.setdefault((edge.from_, edge.to), j)
        if not edges_ok or len(self.ids) != len(spec.nodes):
            return self.details
        forward = [e for e in spec.edges if e.max_iterations is None]
        cycle = find_cycle([n.id for n in spec.nodes], forward)
        if cycle:
            text = " -> ".join([*cycle, cycle[0]])
            self.add(
                "edges",
                f"cycle {text} has no edge with max_iterations; mark its back-edge to bound the loop",
                nodes=cycle,
            )
            return self.details
        conds_ok = self.check_conditions()
        if not conds_ok:
            return self.details
        model = GraphModel.build(spec)
        for edge, message in model.loop_problems():
            self.add(f"edges[{self.edge_index(edge)}]", message, edge=edge.key)
        self.check_condition_roots(model)
        mapped: dict[str, list[tuple[int, Edge]]] = defaultdict(list)
        for j, edge in enumerate(spec.edges):
            if edge.map:
                mapped[edge.to].append((j, edge))
        for i, node in enumerate(spec.nodes):
            self.check_references(i, node, model, mapped.get(node.id, []))
        return self.details

    def edge_index(self, edge: Any) -> int:
        return next(j for j, e in enumerate(self.spec.edges) if e is edge)

    def check_tool(self, i: int, node: Node) -> None:
        if node.is_lambda:
            if not node.tool[len("lambda:") :].strip():
                self.add(f"nodes[{i}].tool", "lambda: needs a function name or ARN", node=node.id)
                return
            # The stack's own functions (executor, API...) must never be a node: a graph could forge records.
            refuse = getattr(self.catalog, "lambda_problem", None)
            problem = refuse(node.tool[len("lambda:") :]) if callable(refuse) else None
            if problem:
                self.add(f"nodes[{i}].tool", problem, node=node.id)
            return
        if self.catalog is None:
            return
        if node.tool not in self.tools:
            self.add(
                f"nodes[{i}].tool",
                f"unknown tool {node.tool!r}; known tools: {', '.join(sorted(self.tools))}",
                node=node.id,
            )

    def check_cache(self, i: int, node: Node) -> None:
        """``cache`` needs a tool whose output is a function of its version and params, with a known version."""
        if node.cache is None:
            return
        loc = f"nodes[{i}].cache"
        if node.tool.startswith(HUMAN_TOOL_PREFIX):
            self.add(loc, f"{node.tool} waits for a person: its answers are never cached (remove cache)", node=node.id)
        elif node.is_lambda and published_version(node.tool[len("lambda:") :]) is None:
            self.add(
                loc,
                "cache on a lambda: node needs a published version (a function ARN ending in :<version>) "
                "or a registered tool: $LATEST and aliases can change under the cache",
                node=node.id,
            )

    def check_timeout(self, i: int, node: Node) -> None:
        """A built-in tool runs inside the executor Lambda: its timeout must end before the Lambda's own."""
        timeout = self.spec.timeout_for(node)
        if node.is_lambda or node.is_human or timeout <= MAX_TOOL_TIMEOUT_SECONDS:
            return
        where = f"nodes[{i}].timeout_seconds" if node.timeout_seconds else "options.default_timeout_seconds"
        self.add(
            where,
            f"node {node.id!r}: timeout {timeout} s is over {MAX_TOOL_TIMEOUT_SECONDS} s (limit: the executor "
            f"Lambda's timeout, {EXECUTOR_TIMEOUT_SECONDS} s, would stop {node.tool} first)",
            node=node.id,
        )

    def check_human(self, i: int, node: Node) -> None:
        """A person's step is a ``.waitForTaskToken`` Task: one wait per node, in a STANDARD workflow."""
        if self.spec.options.workflow_type == "EXPRESS":
            self.add(
                f"nodes[{i}].tool",
                f"node {node.id!r}: {node.tool} waits for a person (.waitForTaskToken), which EXPRESS workflows "
                "do not support; use workflow_type STANDARD",
                node=node.id,
            )
        if node.foreach:
            self.add(
                f"nodes[{i}].foreach", f"node {node.id!r}: {node.tool} waits once; it cannot run per item", node=node.id
            )
        if node.retry is not None:
            self.add(
                f"nodes[{i}].retry",
                f"node {node.id!r}: a person's answer is not retried; timeout_seconds bounds the wait "
                "(make the node optional to go on without an answer)",
                node=node.id,
            )

    def check_params(self, i: int, node: Node, params: dict[str, Any]) -> None:
        if self.catalog is None or node.is_lambda or node.tool not in self.tools:
            return
        model = self.catalog.params_model(node.tool)
        if model is None:
            self.check_schema_params(i, node, params)
            return
        try:
            model.model_validate(params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if _under_whole_reference(params, loc):
                    continue
                self.add(loc_text(("nodes", i, "params", *loc)), f"{node.tool}: {err['msg']}", node=node.id)

    def check_schema_params(self, i: int, node: Node, params: dict[str, Any]) -> None:
        """A registered tool's params against its JSON Schema (a catalog with ``params_schema(name)`` gives it)."""
        lookup = getattr(self.catalog, "params_schema", None)
        schema = lookup(node.tool) if lookup is not None else None
        if schema is None:
            return
        from jsonschema import Draft202012Validator

        from statemachine.schemas import errors

        for err in sorted(errors(schema, params, Draft202012Validator), key=lambda e: list(e.absolute_path)):
            loc = tuple(err.absolute_path)
            structural = err.validator in ("required", "additionalProperties")
            if _under_whole_reference(params, loc) or (not structural and _holds_template(err.instance)):
                continue
            self.add(loc_text(("nodes", i, "params", *loc)), f"{node.tool}: {err.message}", node=node.id)

    def check_conditions(self) -> bool:
        ok = True
        for j, edge in enumerate(self.spec.edges):
            if edge.when is None:
                continue
            try:
                conditions.parse(edge.when)
            except conditions.ConditionError as exc:
                shown = edge.when if len(edge.when) <= 80 else edge.when[:77] + "..."
                self.add(
                    f"edges[{j}].when",
                    f"condition {shown!r}: {exc.message}",
                    edge=edge.key,
                    position={"line": exc.line, "col": exc.col},
                )
                ok = False
        return ok

    def check_condition_roots(self, model: GraphModel) -> None:
        for j, edge in enumerate(self.spec.edges):
            cond = model.condition_of(edge)
            if cond is None:
                continue
            for path in cond.paths:
                if not path.is_node:
                    continue
                if path.root not in self.ids:
                    self.add(
                        f"edges[{j}].when", f"condition reads {path.text!r}: unknown node {path.root!r}", edge=edge.key
                    )
                elif path.root != edge.from_ and not model.is_upstream(path.root, edge.from_):
                    self.add(
                        f"edges[{j}].when",
                        f"condition reads {path.text!r}, but {path.root!r} is not {edge.from_!r} or upstream of it",
                        edge=edge.key,
                    )

    def check_references(self, i: int, node: Node, model: GraphModel, mapped: list[tuple[int, Edge]]) -> None:
        """The node's references (params, edge maps into it, foreach, update_state) name nodes upstream of it."""
        for j, edge in mapped:
            for param, out_path in (edge.map or {}).items():
                if param in node.params:
                    self.add(
                        f"edges[{j}].map.{param}",
                        f"edge {edge.key} maps {param!r}, which nodes[{i}].params already sets",
                        edge=edge.key,
                        node=node.id,
                    )
                try:
                    parse_template(map_reference(edge.from_, out_path))
                except ReferenceSyntaxError as exc:
                    self.add(f"edges[{j}].map.{param}", f"edge {edge.key}: {exc.message}", edge=edge.key)
                    return
                if edge.max_iterations is not None:
                    self.add(
                        f"edges[{j}].map",
                        "a loop back-edge cannot map params (use update_state and state)",
                        edge=edge.key,
                    )
        params = model.effective_params(node)
        try:
            found = list(iter_references(params, "params"))
        except ReferenceSyntaxError:
            found = []
            self.report_syntax(i, node, params, "params")
        for loc, _text, template in found:
            for path in template.paths:
                self.check_root(f"nodes[{i}].{loc}", node, path.root, path.text, model, allow_item=bool(node.foreach))
        if node.foreach is not None:
            loc = f"nodes[{i}].foreach"
            try:
                whole = parse_template(node.foreach).whole
            except ReferenceSyntaxError as exc:
                self.add(loc, f"{exc.message} (offset {exc.offset})", node=node.id)
                whole = None
            else:
                if whole is None:
                    self.add(loc, 'foreach takes one reference to a list, like "{{ input.items }}"', node=node.id)
            if whole is not None:
                if whole.root == "item":
                    self.add(loc, "foreach cannot read 'item'", node=node.id)
                else:
                    self.check_root(loc, node, whole.root, whole.text, model, allow_item=False)
        if isinstance(node.update_state, dict):
            for key, out_path in node.update_state.items():
                if out_path.strip() in ("", "."):
                    continue
                try:
                    parse_path(f"_.{out_path}" if not out_path.startswith("[") else f"_{out_path}")
                except ReferenceSyntaxError:
                    self.add(f"nodes[{i}].update_state.{key}", f"malformed output path {out_path!r}", node=node.id)
        if node.is_lambda:
            self.check_lambda(i, node, params)
        self.check_params(i, node, params)

    def check_lambda(self, i: int, node: Node, params: dict[str, Any]) -> None:
        """A user's Lambda gets its params resolved by Step Functions itself: keep them expressible."""
        from statemachine.compiler import asl_payload

        if node.foreach is not None:
            self.add(
                f"nodes[{i}].foreach",
                "foreach is not supported on lambda: nodes (wrap the call in a tool)",
                node=node.id,
            )

        def keys(value: Any, loc: str) -> None:
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if str(key).endswith(".$"):
                        self.add(
                            f"{loc}.{key}", "param names ending in '.$' are reserved by Step Functions", node=node.id
                        )
                    keys(item, f"{loc}.{key}")

        keys(params, f"nodes[{i}].params")
        try:
            asl_payload(params)
        except (ValueError, ReferenceSyntaxError) as exc:
            self.add(f"nodes[{i}].params", str(exc), node=node.id)

    def report_syntax(self, i: int, node: Node, value: Any, loc: str) -> None:
        """Name every malformed reference (iter_references stops at the first)."""
        if isinstance(value, str):
            try:
                parse_template(value)
            except ReferenceSyntaxError as exc:
                self.add(
                    f"nodes[{i}].{loc}", f"malformed reference at offset {exc.offset}: {exc.message}", node=node.id
                )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self.report_syntax(i, node, item, f"{loc}.{key}")
        elif isinstance(value, list):
            for k, item in enumerate(value):
                self.report_syntax(i, node, item, f"{loc}[{k}]")

    def check_root(self, loc: str, node: Node, root: str, text: str, model: GraphModel, *, allow_item: bool) -> None:
        if root in ("input", "state"):
            return
        if root == "item":
            if not allow_item:
                self.add(
                    loc, f"{{{{ {text} }}}}: 'item' is only available in the params of a foreach node", node=node.id
                )
            return
        if root not in self.ids:
            self.add(loc, f"{{{{ {text} }}}}: unknown node {root!r}", node=node.id)
        elif not model.is_upstream(root, node.id):
            self.add(
                loc,
                f"{{{{ {text} }}}}: node {root!r} is not upstream of {node.id!r} "
                f"(add an edge {root} -> {node.id} or a path to it)",
                node=node.id,
            )


def published_version(target: str) -> str | None:
    """The version a Lambda ``FunctionName`` pins (``name:7``, ``...:function:name:7``), or None for ``$LATEST``
    and aliases, whose code may change: only a published version is immutable."""
    parts = [p.strip() for p in target.strip().split(":")]
    lowered = [p.lower() for p in parts]
    if "function" in lowered[:-1]:
        rest = parts[lowered.index("function") + 1 :]
    elif lowered[0] == "arn":
        rest = parts[6:]
    else:
        rest = parts
    return rest[1] if len(rest) == 2 and rest[1].isdigit() else None


def _holds_template(value: Any) -> bool:
    """True when a value holds a reference somewhere: its final shape is known only at run time."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(_holds_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_template(v) for v in value)
    return False


def _under_whole_reference(params: Any, loc: tuple[Any, ...]) -> bool:
    """True when a params error sits at or under a value that is one whole reference (type unknown until run)."""
    cur = params
    for part in loc:
        if isinstance(cur, str):
            break
        in_map = isinstance(cur, Mapping) and part in cur
        if in_map or (isinstance(cur, list) and isinstance(part, int) and part < len(cur)):
            cur = cur[part]
        else:
            return False
        if isinstance(cur, str) and "{{" in cur:
            try:
                if parse_template(cur).whole is not None:
                    return True
            except ReferenceSyntaxError:
                return False
    return False
