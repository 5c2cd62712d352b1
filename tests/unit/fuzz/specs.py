"""Hypothesis strategies for graph specs: plausible graphs with deliberate mistakes mixed in.

Shared by the validator fuzz test (unit) and the functional test that runs accepted specs in moto. Node
tools are the quick ones (``util.echo``, ``util.sleep`` of at most 20 ms, ``util.fail``,
``text.analyze``) so any accepted spec can also run locally in well under a second per node.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

EXECUTOR_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"
SEEN = {"cases": 0, "accepted": 0, "rejected": 0, "runs": 0, "runs_succeeded": 0}

GOOD_IDS = ["a", "b", "c", "d", "e", "fetch", "n-1", "x_2"]
BAD_IDS = ["", "1a", "input", "state", "item", "a b", "x" * 70, "a.b"]
TOOLS = ["util.echo", "util.echo", "util.echo", "util.sleep", "util.fail", "text.analyze"]
BAD_TOOLS = ["no.such.tool", "lambda:", "", "UTIL.ECHO"]
FIELDS = ["v", "text", "items", "score", "ok", "json", "a"]

CONDITIONS_OUTSIDE_GRAMMAR = [
    "f(x)",
    "a.v.__class__",
    "[x for x in input.items]",
    "lambda: 1",
    "a.v +",
    "a.v + 1 > 2",
    "().__class__",
    "input.items[0:2]",
    "{1: 2}",
    "a.v if a.v else b.v",
    "input['x'] == 1",
    "",
    "   ",
    "__import__('os')",
    "exists()",
    "exists(1)",
    "a.v == (yield)",
    "not",
    "x == 1; y == 2",
]


def _nested(depth: int, leaf: Any = "bottom") -> Any:
    """``leaf`` inside ``depth`` levels of alternating lists and objects."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def _deep_value(max_depth: int) -> st.SearchStrategy[Any]:
    """Deep and large values: nesting up to ``max_depth``, long strings, big and odd numbers."""
    return st.one_of(
        st.integers(1, max_depth).map(_nested),
        st.integers(0, 4000).map(lambda n: "x" * n),
        st.integers(-(10**40), 10**40),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def _hostile_value() -> st.SearchStrategy[Any]:
    """Values over the intake limits: too deep, integers of too many digits, unclosed references."""
    return st.one_of(
        _deep_value(90),
        st.integers(95, 130).map(lambda digits: 10**digits),
        st.integers(1, 3000).map(lambda n: "{{" * n),
        st.integers(60, 80).map(lambda n: "{{ input" + ".a" * n + " }}"),
    )


def _path(roots: list[str]) -> st.SearchStrategy[str]:
    parts = st.lists(
        st.one_of(st.sampled_from(FIELDS).map(lambda f: f".{f}"), st.integers(0, 3).map(lambda i: f"[{i}]")), max_size=3
    )
    return st.builds(lambda root, rest: root + "".join(rest), st.sampled_from(roots), parts)


def _reference(roots: list[str]) -> st.SearchStrategy[str]:
    good = _path(roots).map(lambda p: f"{{{{ {p} }}}}")
    embedded = _path(roots).map(lambda p: f"value: {{{{ {p} }}}}!")
    broken = st.sampled_from(["{{ }}", "{{ a..b }}", "{{ input.", "{{ 1x }}", "{{ a[x] }}", "}} {{", "{{{{a}}}}"])
    return st.one_of(good, good, embedded, broken)


def _literal() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-5, 10).map(str),
        st.sampled_from(["'ok'", '"x"', "True", "False", "None", "1.5", "[1, 2]"]),
    )


def _condition(roots: list[str], grammar_only: bool = False) -> st.SearchStrategy[str]:
    op = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"])
    comparison = st.builds(lambda p, o, lit: f"{p} {o} {lit}", _path(roots), op, _literal())
    exists = _path(roots).map(lambda p: f"exists({p})")
    atom = st.one_of(comparison, comparison, exists, _path(roots))
    compound = st.recursive(
        atom,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
            inner.map(lambda a: f"not ({a})"),
        ),
        max_leaves=4,
    )
    if grammar_only:
        return compound
    oversized = st.one_of(  # over the length, term, nesting or path limits, or close to them
        st.integers(1, 120).map(lambda n: " and ".join(["input.v == 1"] * n)),
        st.integers(1, 300).map(lambda n: "not " * n + "input.v"),
        st.integers(1, 90).map(lambda n: "input" + ".a" * n + " == 1"),
    )
    return st.one_of(
        compound, compound, compound, st.sampled_from(CONDITIONS_OUTSIDE_GRAMMAR), st.text(max_size=12), oversized
    )


def _retry() -> st.SearchStrategy[dict[str, Any] | None]:
    policy = st.fixed_dictionaries(
        {},
        optional={
            "max_attempts": st.one_of(st.integers(0, 1), st.integers(-2, 3)),
            "interval_seconds": st.integers(0, 2),
            "backoff_rate": st.sampled_from([0.5, 1.0, 2.0]),
            "jitter": st.sampled_from(["FULL", "NONE", "SOME"]),
            "surprise": st.just(1),
        },
    )
    return st.one_of(st.none(), st.none(), st.none(), policy)


@st.composite
def _node(draw: st.DrawFn, node_id: str, ids: list[str], sloppy: bool) -> dict[str, Any]:
    """A node; ``sloppy`` lets every kind of mistake in, else only upstream references and valid values."""
    upstream = ids[: ids.index(node_id)] if node_id in ids else []
    roots = ["input", "state", "item", *ids, "ghost"] if sloppy else ["input", "state", *upstream]
    tool = draw(st.sampled_from(TOOLS + BAD_TOOLS) if sloppy else st.sampled_from(TOOLS))
    node: dict[str, Any] = {"id": node_id, "tool": tool}
    if tool == "util.sleep":
        seconds = st.sampled_from([0, 0.01, 0.02])
        node["params"] = {
            "seconds": draw(st.one_of(seconds, st.just("soon"), st.just(-1), _reference(roots)) if sloppy else seconds)
        }
    elif tool == "util.fail":
        node["params"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "failures": st.sampled_from([0, 0, 1, 99, -1] if sloppy else [0, 1, 99]),
                    "error": st.sampled_from(["Boom", "States.Timeout", "bad name!"] if sloppy else ["Boom"]),
                },
            )
        )
    elif tool == "text.analyze":
        text = st.one_of(st.just("a calm, happy text"), _reference(roots), st.integers())
        node["params"] = {"text": draw(text if sloppy else st.just("a calm, happy text"))}
    else:
        large = _hostile_value() if sloppy else _deep_value(40)
        node["params"] = draw(
            st.dictionaries(
                st.sampled_from(FIELDS),
                st.one_of(st.integers(0, 9), st.text(max_size=5), _reference(roots), large),
                max_size=3,
            )
        )
    if sloppy and draw(st.integers(0, 9)) == 0:
        node["params"] = draw(st.sampled_from([None, [], "x", 3]))
    if draw(st.integers(0, 3)) == 0:
        node["retry"] = draw(_retry()) if sloppy else {"max_attempts": draw(st.integers(0, 1)), "interval_seconds": 1}
    if draw(st.integers(0, 5)) == 0:
        node["optional"] = draw(st.sampled_from([True, False, "yes"] if sloppy else [True, False]))
    if draw(st.integers(0, 5)) == 0:
        valid = st.just("{{ input.items }}")
        node["foreach"] = draw(st.one_of(valid, _reference(roots), st.just("input.items")) if sloppy else valid)
        if draw(st.booleans()):
            node["max_concurrency"] = draw(st.integers(-1, 5) if sloppy else st.integers(0, 3))
    if draw(st.integers(0, 6)) == 0:
        good = st.one_of(st.just(True), st.just({"score": "v"}))
        node["update_state"] = draw(st.one_of(st.booleans(), good, st.just({"x": 1})) if sloppy else good)
    if draw(st.integers(0, 8)) == 0:
        node["timeout_seconds"] = draw(st.sampled_from([1, 5, 0, -3] if sloppy else [1, 5]))
    return node


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec dict as a user might POST it."""
    sloppy = draw(st.booleans())
    count = draw(st.integers(0 if sloppy else 1, 7))
    pool = GOOD_IDS + (BAD_IDS if sloppy and draw(st.integers(0, 2)) == 0 else [])
    ids = draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count))
    if not sloppy or draw(st.integers(0, 3)):  # mostly unique ids; sometimes duplicates stay
        ids = list(dict.fromkeys(ids))
    nodes = [draw(_node(node_id, ids, sloppy)) for node_id in ids]
    endpoints = [*ids, "ghost"] if ids else ["ghost"]
    edges: list[dict[str, Any]] = []
    # Mostly forward edges (a DAG in list order), sometimes any pair (cycles, self-loops, unknown nodes).
    for _ in range(draw(st.integers(0, 2 * len(ids) + 1))):
        if ids and (not sloppy or draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(ids) - 1))
            j = draw(st.integers(0, len(ids) - 1))
            src, dst = (ids[min(i, j)], ids[max(i, j)])
        else:
            src, dst = draw(st.sampled_from(endpoints)), draw(st.sampled_from(endpoints))
        if src == dst and not sloppy:
            continue
        edge: dict[str, Any] = {"from": src, "to": dst}
        if draw(st.integers(0, 3)) == 0:
            upstream = ids[: ids.index(src) + 1] if src in ids else []
            edge["when"] = draw(
                _condition(["input", "state", *ids, "ghost"])
                if sloppy
                else _condition(["input", "state", *upstream], grammar_only=True)
            )
        if sloppy and draw(st.integers(0, 6)) == 0:
            edge["max_iterations"] = draw(st.sampled_from([1, 2, 3, 0]))
        if draw(st.integers(0, 8)) == 0:
            maps = [{"v": "v"}, {"text": "text"}, {"x": "missing.path[0]"}, {"": ""}] if sloppy else [{"w": "v"}]
            edge["map"] = draw(st.sampled_from(maps))
        edges.append(edge)
    if not sloppy and len(ids) >= 2 and draw(st.integers(0, 4)) == 0:  # a bounded loop back to an earlier node
        i, j = sorted(draw(st.lists(st.integers(0, len(ids) - 1), min_size=2, max_size=2, unique=True)))
        edges.append({"from": ids[i], "to": ids[j]})
        edges.append(
            {
                "from": ids[j],
                "to": ids[i],
                "when": f"exists(input.{draw(st.sampled_from(FIELDS))})",
                "max_iterations": draw(st.integers(1, 3)),
            }
        )
    name = draw(st.sampled_from(["fuzz", "g", ""] if sloppy else ["fuzz"]))
    spec: dict[str, Any] = {"name": name, "nodes": nodes, "edges": edges}
    if draw(st.integers(0, 4)) == 0:
        spec["options"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "max_concurrency": st.sampled_from([1, 2, 10, 0] if sloppy else [1, 2, 10]),
                    "default_timeout_seconds": st.sampled_from([5, 30, -1] if sloppy else [5, 30]),
                    "default_retry": st.just({"max_attempts": 0}),
                    "workflow_type": st.sampled_from(["STANDARD", "EXPRESS", "FAST"] if sloppy else ["STANDARD"]),
                },
            )
        )
    if sloppy and draw(st.integers(0, 12)) == 0:
        spec[draw(st.sampled_from(["extra", "node", "Edges"]))] = []
    return spec
