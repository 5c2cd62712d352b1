"""Graph analysis shared by validation, the compiler and the diagram: edges, order, loops, gates, blocks.

The compiler turns the graph into a tree of blocks (task, loop, sequence, parallel) by series-parallel
decomposition of the dependency DAG (loop back-edges removed, each loop body collapsed into one unit):

- independent parts (no path between them) become parallel branches;
- a connected part is split into a prefix and the rest; when every node of the prefix is an ancestor of
  every node of the rest, the split adds no waiting at all (exact). Such a split always exists for
  series-parallel graphs (chains, fan-out/fan-in, diamonds and any nesting of them), so there every node
  starts as soon as its own ancestors are done: no level-by-level barriers. Otherwise (e.g. an "N", a
  lattice, a random layered DAG) that part is cut at the level boundary adding the fewest ordering pairs,
  which acts as a barrier inside that part only; each side is decomposed again the same way. So the
  makespan is never worse than a level-by-level schedule, and equals the critical path for
  series-parallel graphs (``bench/compiler_structure.py`` measures both);
- ``options.max_concurrency`` caps the width (how many nodes can run at once): a parallel whose branches
  together are wider than the cap has its branches packed into sequential lanes, the narrowest first,
  until the sum of lane widths fits; a ``foreach`` Map counts as its MaxConcurrency. Step Functions cannot
  cap a Parallel natively; lanes do it with no extra states or transitions.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from statemachine import conditions
from statemachine.references import Path, iter_references, parse_template

if TYPE_CHECKING:
    from collections.abc import Mapping

    from statemachine.spec import Edge, GraphSpec, Node

MAX_BRANCHES = 10
"""Branches joined by one Parallel: its ResultSelector nests one ``States.JsonMerge`` per extra branch and
Step Functions allows 10 nested intrinsic functions in a field."""
INLINE_MAP_MAX_CONCURRENCY = 40
"""An inline Map runs at most 40 iterations at once on AWS, whatever its MaxConcurrency says."""


@dataclass
class Loop:
    """A bounded loop: back-edge ``tail -> head`` with ``max_iterations``; ``body`` runs head ... tail."""

    index: int
    edge: Edge
    body: frozenset[str]
    condition: conditions.Condition | None
    parent: Loop | None = None

    @property
    def head(self) -> str:
        return self.edge.to

    @property
    def tail(self) -> str:
        return self.edge.from_

    @property
    def bound(self) -> int:
        assert self.edge.max_iterations is not None
        return self.edge.max_iterations


@dataclass
class TaskB:
    node: str


@dataclass
class LoopB:
    loop: Loop
    body: Block


@dataclass
class SeqB:
    items: list[Block]


@dataclass
class ParB:
    branches: list[Block]


Block = TaskB | LoopB | SeqB | ParB


@dataclass
class Decomposition:
    """The block tree of a graph and the Map caps its fan-outs need (what the compiler emits from)."""

    block: Block
    map_caps: dict[str, int]
    """Foreach nodes whose concurrency a fan-out lowered to share ``options.max_concurrency``."""


@dataclass
class GraphModel:
    """A valid spec, analysed. Build it with :meth:`build` after validation."""

    spec: GraphSpec
    nodes: dict[str, Node]
    order: dict[str, int]
    forward: list[Edge]
    back: list[Edge]
    parents: dict[str, list[Edge]]
    children: dict[str, list[Edge]]
    topo: list[str]
    ancestor_bits: dict[str, int]
    """Per node, its ancestors over the forward edges as a bit set (bit ``order[a]`` for ancestor ``a``): one OR
    per edge, where sets of ids would copy every ancestor of every node."""
    loops: list[Loop] = field(default_factory=list)
    edge_conditions: dict[str, conditions.Condition] = field(default_factory=dict)
    """``edge.key`` (``a->b``: validation refuses duplicate edges) -> its parsed ``when``."""

    @classmethod
    def build(cls, spec: GraphSpec) -> GraphModel:
        nodes = {n.id: n for n in spec.nodes}
        order = {n.id: i for i, n in enumerate(spec.nodes)}
        forward = [e for e in spec.edges if e.max_iterations is None]
        back = [e for e in spec.edges if e.max_iterations is not None]
        parents: dict[str, list[Edge]] = defaultdict(list)
        children: dict[str, list[Edge]] = defaultdict(list)
        for edge in forward:
            parents[edge.to].append(edge)
            children[edge.from_].append(edge)
        topo = topological_order(list(nodes), forward, order)
        if topo is None:
            raise ValueError("the forward edges have a cycle (validate the spec first)")
        bits: dict[str, int] = {}
        for node in topo:
            acc = 0
            for edge in parents[node]:
                acc |= bits[edge.from_] | (1 << order[edge.from_])
            bits[node] = acc
        model = cls(spec, nodes, order, forward, back, parents, children, topo, bits)
        for edge in spec.edges:
            if edge.when:
                model.edge_conditions[edge.key] = conditions.parse(edge.when)
        model._find_loops()
        return model

    # ---- structure ---------------------------------------------------------------------------------------

    def is_upstream(self, node: str, of: str) -> bool:
        """True when ``node`` is an ancestor of ``of`` over the forward edges."""
        return bool(self.ancestor_bits[of] >> self.order[node] & 1)

    def ancestors(self, node: str) -> set[str]:
        """The ancestors of ``node`` over the forward edges."""
        return {n for n in self.nodes if self.is_upstream(n, node)}

    def descendants(self, node: str) -> set[str]:
        return {n for n in self.nodes if self.is_upstream(node, n)}

    def condition_of(self, edge: Edge) -> conditions.Condition | None:
        """The parsed ``when`` of an edge of this spec."""
        return self.edge_conditions.get(edge.key)

    def _find_loops(self) -> None:
        for index, edge in enumerate(self.back):
            head, tail = edge.to, edge.from_
            body = {head, tail} | (self.descendants(head) & self.ancestors(tail))
            self.loops.append(Loop(index, edge, frozenset(body), self.condition_of(edge)))
        for loop in self.loops:
            enclosing = [o for o in self.loops if o is not loop and loop.body < o.body]
            loop.parent = min(enclosing, key=lambda o: len(o.body)) if enclosing else None

    def loop_problems(self) -> list[tuple[Edge, str]]:
        """Loops the compiler cannot express: with a message for each offending back-edge."""
        problems: list[tuple[Edge, str]] = []
        heads: dict[str, Loop] = {}
        for loop in self.loops:
            if loop.tail != loop.head and not self.is_upstream(loop.head, loop.tail):
                problems.append(
                    (
                        loop.edge,
                        f"max_iterations marks a loop back-edge, but {loop.head!r} does not "
                        f"lead to {loop.tail!r}: the edge closes no cycle",
                    )
                )
                continue
            if loop.head in heads:
                problems.append(
                    (
                        loop.edge,
                        f"node {loop.head!r} already heads the loop from "
                        f"{heads[loop.head].tail!r}; one back-edge per loop head",
                    )
                )
            heads[loop.head] = loop
            for edge in self.forward:
                if edge.to in loop.body and edge.to != loop.head and edge.from_ not in loop.body:
                    problems.append(
                        (
                            loop.edge,
                            f"loop {loop.head}..{loop.tail} is entered at {edge.to!r} from "
                            f"{edge.from_!r}; a loop body may only be entered at its head",
                        )
                    )
            for other in self.loops:
                if other is loop or other.index < loop.index:
                    continue
                inter = loop.body & other.body
                if inter and not (loop.body <= other.body or other.body <= loop.body):
                    problems.append(
                        (
                            other.edge,
                            f"loops {loop.head}..{loop.tail} and {other.head}..{other.tail} "
                            "overlap; loops must be nested or disjoint",
                        )
                    )
        return problems

    def in_loop(self, node: str) -> bool:
        return any(node in loop.body for loop in self.loops)

    # ---- node facts the compiler needs ---------------------------------------------------------------

    def effective_params(self, node: Node) -> dict[str, object]:
        """The node's params with incoming edges' ``map`` shorthands turned into references."""
        params = dict(node.params)
        for edge in self.parents.get(node.id, []) + [e for e in self.back if e.to == node.id]:
            for param, out_path in (edge.map or {}).items():
                params[param] = map_reference(edge.from_, out_path)
        return params

    def gate_rules(self) -> dict[str, conditions.Rule | bool]:
        """For each node, the Choice rule that decides whether it runs (``True``: it always runs)."""
        rules: dict[str, conditions.Rule | bool] = {}
        for node in self.topo:
            incoming = self.parents.get(node, [])
            if not incoming:
                rules[node] = True
                continue
            options: list[conditions.Rule | bool] = []
            for edge in incoming:
                parent = rules[edge.from_]
                ran = parent if isinstance(parent, bool) else conditions.present(Path(edge.from_))
                cond = self.condition_of(edge)
                options.append(conditions.combine_and(ran, cond.choice_rule() if cond else True))
            rules[node] = conditions.combine_or(*options)
        return rules

    def inline_paths(self) -> dict[str, list[str]]:
        """Per node, the paths inside its output that Choice rules or Map states read."""
        found: dict[str, set[str]] = defaultdict(set)
        paths = [p for cond in self.edge_conditions.values() for p in cond.paths]
        for node in self.nodes.values():
            whole = parse_template(node.foreach).whole if node.foreach else None
            if whole is not None:
                paths.append(whole)
            if node.is_lambda:  # Step Functions resolves these params itself: they must be inline
                paths.extend(p for _, _, t in iter_references(self.effective_params(node)) for p in t.paths)
        for path in paths:
            if path.is_node and path.parts:
                found[path.root].add(relative_text(path.parts))
        return {node: sorted(found[node]) for node in found}

    # ---- decomposition ---------------------------------------------------------------------------------

    def decompose(self) -> Decomposition:
        """The block tree of the whole graph (see the module docstring), with the Map caps it needs."""
        top = [loop for loop in self.loops if loop.parent is None]
        caps: dict[str, int] = {}
        return Decomposition(self._level(set(self.nodes), top, caps), caps)

    def _level(self, members: set[str], child_loops: list[Loop], caps: dict[str, int]) -> Block:
        unit_of: dict[str, int] = {}
        units: list[TaskB | Loop] = []
        for loop in sorted(child_loops, key=lambda lp: self.order[lp.head]):
            for node in loop.body:
                unit_of[node] = len(units)
            units.append(loop)
        for node in sorted(members - set(unit_of), key=self.order.__getitem__):
            unit_of[node] = len(units)
            units.append(TaskB(node))
        deps: set[tuple[int, int]] = set()
        for edge in self.forward:
            if edge.from_ in members and edge.to in members:
                a, b = unit_of[edge.from_], unit_of[edge.to]
                if a != b:
                    deps.add((a, b))
        built: list[Block] = []
        for unit in units:
            if isinstance(unit, Loop):
                inner = [lp for lp in self.loops if lp.parent is unit]
                built.append(LoopB(unit, self._level(set(unit.body), inner, caps)))
            else:
                built.append(unit)
        rank = [len(self.order)] * len(units)
        for n in members:
            rank[unit_of[n]] = min(rank[unit_of[n]], self.order[n])
        return _Decomposer(built, deps, rank, self, caps).run()

    def join_width(self, block: Block) -> int:
        """Most branch documents one Parallel result can hold (nested joins included)."""
        if isinstance(block, TaskB):
            return 1
        if isinstance(block, LoopB):
            return self.join_width(block.body)
        if isinstance(block, SeqB):
            return max(self.join_width(b) for b in block.items)
        return sum(self.join_width(b) for b in block.branches)

    def map_concurrency(self, node: Node, caps: Mapping[str, int] | None = None) -> int:
        """A foreach Map's MaxConcurrency: its own, within the graph's cap, its share of a fan-out (``caps``,
        from :meth:`decompose`) and AWS's 40."""
        cap = self.spec.options.max_concurrency
        shared = (caps or {}).get(node.id, cap)
        return min(node.max_concurrency or cap, cap, shared, INLINE_MAP_MAX_CONCURRENCY)


def relative_text(parts: tuple[str | int, ...]) -> str:
    """``json.rows[0]``: a path inside an output, as ``NodeContext.inline_paths`` lists it."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def map_reference(source: str, out_path: str) -> str:
    """``{{ source.path }}`` for an edge ``map`` entry (``""`` or ``"."`` maps the whole output)."""
    out_path = out_path.strip()
    if out_path in ("", "."):
        return f"{{{{ {source} }}}}"
    sep = "" if out_path.startswith("[") else "."
    return f"{{{{ {source}{sep}{out_path} }}}}"


def topological_order(nodes: list[str], edges: list[Edge], order: dict[str, int]) -> list[str] | None:
    """Kahn's order, ties broken by spec order; ``None`` when the edges have a cycle."""
    indegree = {n: 0 for n in nodes}
    out: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        indegree[edge.to] += 1
        out[edge.from_].append(edge.to)
    result: list[str] = []
    heap = [(order[n], n) for n, d in indegree.items() if d == 0]
    heapq.heapify(heap)
    while heap:
        _, node = heapq.heappop(heap)
        result.append(node)
        for nxt in out[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(heap, (order[nxt], nxt))
    return result if len(result) == len(nodes) else None


def find_cycle(nodes: list[str], edges: list[Edge]) -> list[str] | None:
    """One cycle among the edges, as its nodes in order, or ``None``."""
    out: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        out[edge.from_].append(edge.to)
    color = dict.fromkeys(nodes, 0)
    stack: list[str] = []

    def visit(start: str) -> list[str] | None:
        # iterative DFS keeping the path, so 500-node chains do not hit the recursion limit
        iters = [iter(out[start])]
        stack.append(start)
        color[start] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                iters.pop()
                color[stack.pop()] = 2
                continue
            if color.get(nxt, 0) == 1:
                return stack[stack.index(nxt) :]
            if color.get(nxt, 0) == 0:
                color[nxt] = 1
                stack.append(nxt)
                iters.append(iter(out[nxt]))
        return None

    for node in nodes:
        if color[node] == 0:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


class _Decomposer:
    """Series-parallel decomposition of units with dependency pairs (indexes into ``units``)."""

    def __init__(
        self, units: list[Block], deps: set[tuple[int, int]], rank: list[int], model: GraphModel, caps: dict[str, int]
    ) -> None:
        self.units = units
        self.model = model
        self.caps = caps
        """Foreach nodes whose concurrency a fan-out lowered to fit ``options.max_concurrency`` (filled here)."""
        n = len(units)
        self.succ: list[list[int]] = [[] for _ in range(n)]
        self.pred: list[list[int]] = [[] for _ in range(n)]
        for a, b in sorted(deps):
            self.succ[a].append(b)
            self.pred[b].append(a)
        self.neighbours = [s + p for s, p in zip(self.succ, self.pred, strict=True)]
        self.measured: dict[int, tuple[Block, int, int]] = {}
        """``id(block)`` -> (the block, kept so its id stays its own; width; size): each block measured once."""
        # topological order with depth, ties by spec rank
        depth = [0] * n
        indeg = [len(p) for p in self.pred]
        order: list[int] = []
        heap = [(0, rank[i], i) for i in range(n) if indeg[i] == 0]
        heapq.heapify(heap)
        while heap:
            _, _, i = heapq.heappop(heap)
            order.append(i)
            for j in self.succ[i]:
                depth[j] = max(depth[j], depth[i] + 1)
                indeg[j] -= 1
                if indeg[j] == 0:
                    heapq.heappush(heap, (depth[j], rank[j], j))
        self.order = sorted(order, key=lambda i: (depth[i], rank[i]))
        self.position = {u: k for k, u in enumerate(self.order)}
        self.bit = [1 << i for i in range(n)]
        self.desc = [0] * n
        self.anc = [0] * n
        for i in reversed(order):
            for j in self.succ[i]:
                self.desc[i] |= (1 << j) | self.desc[j]
        for i in order:
            for j in self.pred[i]:
                self.anc[i] |= (1 << j) | self.anc[j]

    def run(self) -> Block:
        return self.split(list(self.order))

    def split(self, members: list[int]) -> Block:
        if len(members) == 1:
            return self.units[members[0]]
        groups = self.components(members)
        if len(groups) > 1:
            return self.parallel([self.split(g) for g in groups])
        # Candidate splits are level boundaries (depth counted inside ``members``): every exact split is one,
        # and cutting elsewhere would serialise nodes of the same level. Cut at every exact split at once (a
        # chain becomes its nodes in one pass, not one recursion per node), else at the boundary that adds the
        # fewest ordering pairs.
        depth: dict[int, int] = {}
        position = self.position
        mask = 0
        for m in members:  # members are in topological order: a member's predecessors inside have a depth
            level = 0
            for p in self.pred[m]:
                if p in depth and depth[p] >= level:
                    level = depth[p] + 1
            depth[m] = level
            mask |= self.bit[m]
        ordered = sorted(members, key=lambda m: (depth[m], position[m]))
        best_k, best_cost = 1, None
        exact: list[int] = []
        p_mask, r_mask, pairs = 0, mask, 0
        size = len(members)
        anc, desc, bit = self.anc, self.desc, self.bit
        for k in range(1, size):
            x = ordered[k - 1]
            r_mask ^= bit[x]
            pairs += (desc[x] & r_mask).bit_count() - (anc[x] & p_mask).bit_count()
            p_mask |= bit[x]
            if depth[ordered[k]] == depth[x]:
                continue  # not a level boundary
            cost = k * (size - k) - pairs
            if cost == 0:
                exact.append(k)
            elif not exact and (best_cost is None or cost < best_cost):
                best_k, best_cost = k, cost
        cuts = [0, *(exact or [best_k]), len(ordered)]
        items: list[Block] = []
        for start, end in itertools.pairwise(cuts):
            part = self.split(ordered[start:end])
            items.extend(part.items if isinstance(part, SeqB) else [part])
        return SeqB(items)

    def components(self, members: list[int]) -> list[list[int]]:
        unseen = set(members)
        groups: list[list[int]] = []
        for start in members:
            if start not in unseen:
                continue
            group: list[int] = []
            todo = [start]
            unseen.discard(start)
            while todo:
                cur = todo.pop()
                group.append(cur)
                for nxt in self.neighbours[cur]:
                    if nxt in unseen:
                        unseen.discard(nxt)
                        todo.append(nxt)
            if len(group) == len(members):
                return [members]  # connected: ``members`` is already in order
            groups.append(sorted(group, key=self.position.__getitem__))
        return groups

    def measure(self, block: Block) -> tuple[int, int]:
        """The block's width (``GraphModel.width``) and size (nodes on its longest path), each block once."""
        known = self.measured.get(id(block))
        if known is not None:
            return known[1], known[2]
        if isinstance(block, TaskB):
            node = self.model.nodes[block.node]
            width, size = (self.model.map_concurrency(node, self.caps) if node.foreach else 1), 1
        elif isinstance(block, LoopB):
            width, size = self.measure(block.body)
        elif isinstance(block, SeqB):
            parts = [self.measure(b) for b in block.items]
            width, size = max(w for w, _ in parts), sum(z for _, z in parts)
        else:
            parts = [self.measure(b) for b in block.branches]
            width, size = sum(w for w, _ in parts), max(z for _, z in parts)
        self.measured[id(block)] = (block, width, size)
        return width, size

    def parallel(self, branches: list[Block]) -> Block:
        cap = self.model.spec.options.max_concurrency
        lanes: list[list[Block]] = [[b] for b in branches]
        widths, sizes = [self.measure(b)[0] for b in branches], [self.measure(b)[1] for b in branches]
        # first lower the concurrency of foreach branches (their items share the cap), then pack lanes
        excess = sum(widths) - cap
        for i in sorted(range(len(branches)), key=lambda i: -widths[i]):
            branch = branches[i]
            if excess <= 0:
                break
            if isinstance(branch, TaskB) and self.model.nodes[branch.node].foreach and widths[i] > 1:
                lowered = max(1, widths[i] - excess)
                excess -= widths[i] - lowered
                self.caps[branch.node] = lowered
                widths[i] = lowered
                self.measured[id(branch)] = (branch, lowered, sizes[i])
        # Merge the two lanes that are narrowest (then shortest, then first): the width sum drops by the
        # smaller one. A heap keyed by (width, size, slot); a merged lane keeps the earlier slot.
        live = dict(enumerate(lanes))
        heap = [(widths[i], sizes[i], i) for i in live]
        heapq.heapify(heap)
        total = sum(widths)
        while len(live) > 1 and total > cap:
            wx, sx, x = heapq.heappop(heap)
            wy, sy, y = heapq.heappop(heap)
            a, b = min(x, y), max(x, y)
            live[a].extend(live.pop(b))
            total -= min(wx, wy)
            heapq.heappush(heap, (max(wx, wy), sx + sy, a))
        blocks: list[Block] = [lane[0] if len(lane) == 1 else SeqB(_flatten(lane)) for _, lane in sorted(live.items())]
        if len(blocks) == 1:
            return blocks[0]
        return _group(blocks)


def _flatten(items: list[Block]) -> list[Block]:
    out: list[Block] = []
    for item in items:
        out.extend(item.items if isinstance(item, SeqB) else [item])
    return out


def _group(blocks: list[Block]) -> ParB:
    """A Parallel of at most :data:`MAX_BRANCHES` branches, nesting Parallels for more."""
    if len(blocks) <= MAX_BRANCHES:
        return ParB(blocks)
    size = -(-len(blocks) // MAX_BRANCHES)
    chunks = [blocks[i : i + size] for i in range(0, len(blocks), size)]
    return _group([chunk[0] if len(chunk) == 1 else _group(chunk) for chunk in chunks])


def first_node(block: Block) -> str:
    """The node a block starts with (the first of :func:`block_nodes`, without listing the others)."""
    while not isinstance(block, TaskB):
        if isinstance(block, LoopB):
            block = block.body
        else:
            block = (block.items if isinstance(block, SeqB) else block.branches)[0]
    return block.node


def block_nodes(block: Block) -> list[str]:
    """Node ids inside a block, in emission order."""
    if isinstance(block, TaskB):
        return [block.node]
    if isinstance(block, LoopB):
        return block_nodes(block.body)
    parts = block.items if isinstance(block, SeqB) else block.branches
    return [n for b in parts for n in block_nodes(b)]
