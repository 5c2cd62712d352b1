"""Edge conditions (``when``): a small expression language parsed with ``ast``, compiled to ASL Choice rules.

Allowed: comparisons (``== != < <= > >=``, ``in``/``not in``, ``is None``/``is not None``), ``and``/``or``/
``not``, literals (strings, numbers, booleans, ``None``, lists of literals after ``in``), paths (``input.x``,
``state.score``, ``fetch.json.rows[0]``, ``my-node.ok``) and ``exists(path)``. Anything else (calls,
arithmetic, comprehensions, lambdas, attribute tricks on literals) is rejected with its position.

Semantics, as the Choice rules evaluate them: every comparison first checks that its paths are present
and of the literal's type (``IsPresent``, ``IsNumeric``, ``IsString``, ``IsBoolean``, ``IsNull``), so a
missing or mistyped value makes the comparison false (and ``!=`` / ``not in`` true). A bare path is true
when it is ``true``, a non-zero number or a non-empty string. ``"text" in path`` is a substring test
(``StringMatches``); ``path in [..]`` is membership in the literal list.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from statemachine.references import MAX_PATH_PARTS, Path

Rule = dict[str, Any]

MAX_CONDITION_CHARS = 2000
"""A condition is at most this long: parsing and compiling it stay bounded whatever a caller sends."""
MAX_CONDITION_TERMS = 64
"""Comparisons, bare paths and ``exists()`` in one condition (each becomes several Choice rules)."""
MAX_CONDITION_NESTING = 32
"""``and``/``or``/``not`` nested at most this deep."""


class ConditionError(ValueError):
    """The condition is outside the grammar; ``line``/``col`` (1-based) point at the offending part."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(f"{message} (line {line}, col {col})")
        self.message = message
        self.line = line
        self.col = col


@dataclass(frozen=True)
class Lit:
    """A literal value."""

    value: Any


@dataclass(frozen=True)
class Cmp:
    """``left op right``; one side at least is a path (literal-only comparisons are folded)."""

    op: str
    left: Path | Lit
    right: Path | Lit


@dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` over parts."""

    op: str
    parts: tuple[Cond, ...]


@dataclass(frozen=True)
class NotOp:
    part: Cond


@dataclass(frozen=True)
class Exists:
    path: Path


@dataclass(frozen=True)
class Truthy:
    path: Path


@dataclass(frozen=True)
class Const:
    value: bool


Cond = Cmp | BoolOp | NotOp | Exists | Truthy | Const

_HYPHENATED = re.compile(r"(?<![\w\"'])[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)+")
_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_JSON_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
"""JSON spellings accepted beside Python's ``True``/``False``/``None``."""
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass
class Condition:
    """A parsed condition: its tree and the paths it reads."""

    text: str
    tree: Cond
    paths: list[Path] = field(default_factory=list)

    def nodes(self) -> set[str]:
        """Node ids whose outputs the condition reads."""
        return {p.root for p in self.paths if p.is_node}

    def choice_rule(self) -> Rule | bool:
        """The ASL Choice rule (without ``Next``), or a constant when the condition does not depend on data."""
        return to_rule(self.tree)


def _protect_hyphens(text: str) -> tuple[str, dict[str, str]]:
    """Rewrite ``my-node`` (outside string literals) to a same-length identifier so ``ast`` can parse it."""
    out: list[str] = []
    names: dict[str, str] = {}
    i = 0
    seg_start = 0

    def flush(end: int) -> None:
        def repl(match: re.Match[str]) -> str:
            word = match.group(0)
            safe = word.replace("-", "_")
            if safe in names and names[safe] != word:
                raise ConditionError(f"ambiguous names {word!r} and {names[safe]!r}", 1, match.start() + seg_start + 1)
            names[safe] = word
            return safe

        out.append(_HYPHENATED.sub(repl, text[seg_start:end]))

    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            flush(i)
            j = i + 1
            while j < len(text) and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
            seg_start = i
            continue
        i += 1
    flush(len(text))
    return "".join(out), names


def parse(text: str, *, allow_item: bool = False) -> Condition:
    """Parse a condition; raises :class:`ConditionError` with the position of anything outside the grammar.

    Validation and compiling parse each edge's condition more than once: the parsed form is cached.
    """
    return _parse(text, allow_item)


@functools.lru_cache(maxsize=4096)
def _parse(text: str, allow_item: bool) -> Condition:
    if not text or not text.strip():
        raise ConditionError("empty condition")
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(
            f"the condition is {len(text)} characters long; a condition has at most {MAX_CONDITION_CHARS}"
        )
    source, renamed = _protect_hyphens(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid expression: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
    except (RecursionError, MemoryError):  # Python's own parser gives up on very deep nesting
        raise ConditionError(
            f"nested too deeply (and/or/not nest at most {MAX_CONDITION_NESTING} deep, "
            f"paths have at most {MAX_PATH_PARTS} parts)"
        ) from None
    _check_shape(tree.body)
    parser = _Parser(renamed, allow_item)
    cond = parser.cond(tree.body)
    return Condition(text, cond, parser.paths)


def _check_shape(root: ast.expr) -> None:
    """Bound the tree before the recursive walk: nesting of and/or/not and the number of terms (iterative)."""
    terms = 0
    stack: list[tuple[ast.expr, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            if depth >= MAX_CONDITION_NESTING:
                raise _Parser.fail(node, f"and/or/not nested more than {MAX_CONDITION_NESTING} deep")
            children = node.values if isinstance(node, ast.BoolOp) else [node.operand]
            stack.extend((child, depth + 1) for child in reversed(children))
            continue
        terms += len(node.ops) if isinstance(node, ast.Compare) else 1
        if terms > MAX_CONDITION_TERMS:
            raise _Parser.fail(node, f"more than {MAX_CONDITION_TERMS} comparisons and tests in one condition")


class _Parser:
    def __init__(self, renamed: dict[str, str], allow_item: bool) -> None:
        self.renamed = renamed
        self.allow_item = allow_item
        self.paths: list[Path] = []

    @staticmethod
    def fail(node: ast.AST, message: str) -> ConditionError:
        return ConditionError(message, getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1)

    def cond(self, node: ast.expr) -> Cond:
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            return BoolOp(op, tuple(self.cond(v) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return NotOp(self.cond(node.operand))
        if isinstance(node, ast.Compare):
            parts: list[Cond] = []
            lhs = node.left
            for cmpop, rhs in zip(node.ops, node.comparators, strict=True):
                parts.append(self.compare(node, _OPS[type(cmpop)], lhs, rhs))
                lhs = rhs
            return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "exists":
                if len(node.args) != 1 or node.keywords:
                    raise self.fail(node, "exists() takes exactly one path")
                return Exists(self.path(node.args[0]))
            raise self.fail(node, "function calls are not allowed (only exists(path))")
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return Const(node.value)
        if isinstance(node, ast.Name) and node.id in ("true", "false"):
            return Const(node.id == "true")
        if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
            return Truthy(self.path(node))
        raise self.fail(node, f"{_describe(node)} is not allowed in a condition")

    def operand(self, node: ast.expr) -> Path | Lit:
        if isinstance(node, ast.Name) and node.id in _JSON_LITERALS:
            return Lit(_JSON_LITERALS[node.id])
        if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
            return self.path(node)
        if isinstance(node, ast.Call):
            raise self.fail(node, "function calls are not allowed (only exists(path) as a condition)")
        return Lit(self.literal(node))

    def literal(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name) and node.id in _JSON_LITERALS:
            return _JSON_LITERALS[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and not math.isfinite(node.value):
            raise self.fail(node, "numbers must be finite")
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)
        ):
            return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
        if isinstance(node, ast.List | ast.Tuple):
            return [self.literal(e) for e in node.elts]
        raise self.fail(node, f"{_describe(node)} is not allowed in a condition")

    def path(self, node: ast.expr) -> Path:
        parts: list[str | int] = []
        cur = node
        while True:
            if isinstance(cur, ast.Attribute):
                if cur.attr.startswith("__"):
                    raise self.fail(cur, f"'{cur.attr}': names starting with '__' are not allowed")
                parts.append(self.renamed.get(cur.attr, cur.attr))
                cur = cur.value
            elif isinstance(cur, ast.Subscript):
                key = cur.slice
                if isinstance(key, ast.Constant) and isinstance(key.value, int) and not isinstance(key.value, bool):
                    if key.value < 0:
                        raise self.fail(key, "negative indexes are not allowed")
                    parts.append(key.value)
                elif (
                    isinstance(key, ast.Constant)
                    and isinstance(key.value, str)
                    and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key.value)
                ):
                    parts.append(key.value)
                elif isinstance(key, ast.UnaryOp) and isinstance(key.op, ast.USub):
                    raise self.fail(key, "negative indexes are not allowed")
                else:
                    raise self.fail(cur, "only [n] indexes and ['field'] keys are allowed in paths")
                cur = cur.value
            elif isinstance(cur, ast.Name):
                root = self.renamed.get(cur.id, cur.id)
                if root == "item" and not self.allow_item:
                    raise self.fail(cur, "'item' is only available inside foreach params")
                if len(parts) > MAX_PATH_PARTS:
                    raise self.fail(node, f"a path has at most {MAX_PATH_PARTS} parts (this one has {len(parts)})")
                path = Path(root, tuple(reversed(parts)))
                self.paths.append(path)
                return path
            else:
                raise self.fail(cur, f"{_describe(cur)} cannot start a path")

    def compare(self, node: ast.Compare, op: str, lnode: ast.expr, rnode: ast.expr) -> Cond:
        left = self.operand(lnode)
        right = self.operand(rnode)
        if op in ("is", "is not"):
            if not (isinstance(right, Lit) and right.value is None):
                raise self.fail(rnode, "'is' only compares with None")
            return Cmp("==" if op == "is" else "!=", left, right)
        if op in ("in", "not in"):
            if isinstance(right, Lit) and not isinstance(right.value, list):
                raise self.fail(rnode, "'in' needs a list of literals, or a path to a string (substring test)")
            if isinstance(right, Path) and not (isinstance(left, Lit) and isinstance(left.value, str)):
                raise self.fail(lnode, "'x in path' only tests a literal substring of a string value")
            nested = (
                isinstance(right, Lit)
                and isinstance(right.value, list)
                and any(isinstance(v, list) for v in right.value)
            )
            if nested:
                raise self.fail(rnode, "lists after 'in' hold literals only")
        else:
            for side, n in ((left, lnode), (right, rnode)):
                if isinstance(side, Lit) and isinstance(side.value, list):
                    raise self.fail(n, "lists are only allowed after 'in'")
            if op in ("<", "<=", ">", ">="):
                for side, n in ((left, lnode), (right, rnode)):
                    if isinstance(side, Lit) and not (
                        isinstance(side.value, str)
                        or (isinstance(side.value, int | float) and not isinstance(side.value, bool))
                    ):
                        raise self.fail(n, f"'{op}' compares numbers or strings")
        if isinstance(left, Lit) and isinstance(right, Lit):
            return Const(_fold(op, left.value, right.value))
        return Cmp(op, left, right)


def _fold(op: str, a: Any, b: Any) -> bool:
    try:
        return bool(
            {
                "==": lambda: a == b,
                "!=": lambda: a != b,
                "<": lambda: a < b,
                "<=": lambda: a <= b,
                ">": lambda: a > b,
                ">=": lambda: a >= b,
                "in": lambda: a in b,
                "not in": lambda: a not in b,
            }[op]()
        )
    except TypeError:
        return op in ("!=", "not in")


def _describe(node: ast.AST) -> str:
    names = {
        ast.BinOp: "arithmetic",
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.IfExp: "a conditional expression",
        ast.Dict: "a dict",
        ast.Set: "a set",
        ast.Call: "a function call",
        ast.NamedExpr: "an assignment",
        ast.Starred: "unpacking",
        ast.JoinedStr: "an f-string",
        ast.Await: "await",
        ast.Constant: "this literal",
        ast.List: "a list",
        ast.Tuple: "a tuple",
        ast.UnaryOp: "this operator",
        ast.Compare: "a comparison here",
        ast.BoolOp: "and/or here",
    }
    return names.get(type(node), f"'{type(node).__name__}'")


# ---- to ASL Choice rules ----------------------------------------------------------------------------------


def _var(path: Path) -> str:
    return path.jsonpath()


def _present(path: Path) -> Rule:
    return {"Variable": _var(path), "IsPresent": True}


def _and(*rules: Rule) -> Rule:
    flat: list[Rule] = []
    for rule in rules:
        flat.extend(rule["And"] if set(rule) == {"And"} else [rule])
    return flat[0] if len(flat) == 1 else {"And": flat}


def _or(*rules: Rule) -> Rule:
    flat: list[Rule] = []
    for rule in rules:
        flat.extend(rule["Or"] if set(rule) == {"Or"} else [rule])
    return flat[0] if len(flat) == 1 else {"Or": flat}


def _not(rule: Rule) -> Rule:
    if set(rule) == {"Not"}:
        inner: Rule = rule["Not"]
        return inner
    return {"Not": rule}


def _kind(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Numeric"
    return "String"


_CMP_NAMES = {"==": "Equals", "<": "LessThan", "<=": "LessThanEquals", ">": "GreaterThan", ">=": "GreaterThanEquals"}


def _path_vs_literal(op: str, path: Path, value: Any) -> Rule:
    kind = _kind(value)
    guard = [_present(path)]
    if kind == "Null":
        return _and(*guard, {"Variable": _var(path), "IsNull": True})
    guard.append({"Variable": _var(path), f"Is{'Numeric' if kind == 'Numeric' else kind}": True})
    return _and(*guard, {"Variable": _var(path), f"{kind}{_CMP_NAMES[op]}": value})


def _path_vs_path(op: str, left: Path, right: Path) -> Rule:
    kinds = ["Numeric", "String", "Boolean"] if op == "==" else ["Numeric", "String"]
    options = [
        _and(
            _present(left),
            _present(right),
            {"Variable": _var(left), f"Is{kind}": True},
            {"Variable": _var(right), f"Is{kind}": True},
            {"Variable": _var(left), f"{kind}{_CMP_NAMES[op]}Path": _var(right)},
        )
        for kind in kinds
    ]
    return _or(*options)


def _escape_match(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def _cmp_rule(cmp: Cmp) -> Rule | bool:
    op, left, right = cmp.op, cmp.left, cmp.right
    if op == "!=":
        inner = _cmp_rule(Cmp("==", left, right))
        return (not inner) if isinstance(inner, bool) else _not(inner)
    if op == "not in":
        inner = _cmp_rule(Cmp("in", left, right))
        return (not inner) if isinstance(inner, bool) else _not(inner)
    if op == "in":
        if isinstance(right, Lit) and isinstance(right.value, list):
            assert isinstance(left, Path)
            if not right.value:
                return False
            return _or(*[_path_vs_literal("==", left, v) for v in right.value])
        assert isinstance(left, Lit) and isinstance(left.value, str) and isinstance(right, Path)
        return _and(
            _present(right),
            {"Variable": _var(right), "IsString": True},
            {"Variable": _var(right), "StringMatches": f"*{_escape_match(left.value)}*"},
        )
    if isinstance(left, Lit):
        assert isinstance(right, Path)
        return _path_vs_literal(_FLIP[op], right, left.value)
    if isinstance(right, Lit):
        return _path_vs_literal(op, left, right.value)
    return _path_vs_path(op, left, right)


def to_rule(cond: Cond) -> Rule | bool:
    """Compile a condition tree to a Choice rule; constants fold away (``True``/``False``)."""
    if isinstance(cond, Const):
        return cond.value
    if isinstance(cond, Exists):
        return _present(cond.path)
    if isinstance(cond, Truthy):
        p = cond.path
        return _and(
            _present(p),
            _or(
                _and({"Variable": _var(p), "IsBoolean": True}, {"Variable": _var(p), "BooleanEquals": True}),
                _and({"Variable": _var(p), "IsNumeric": True}, _not({"Variable": _var(p), "NumericEquals": 0})),
                _and({"Variable": _var(p), "IsString": True}, _not({"Variable": _var(p), "StringEquals": ""})),
            ),
        )
    if isinstance(cond, NotOp):
        inner = to_rule(cond.part)
        return (not inner) if isinstance(inner, bool) else _not(inner)
    if isinstance(cond, BoolOp):
        rules: list[Rule] = []
        for part in cond.parts:
            rule = to_rule(part)
            if isinstance(rule, bool):
                if cond.op == "and" and not rule:
                    return False
                if cond.op == "or" and rule:
                    return True
                continue
            rules.append(rule)
        if not rules:
            return cond.op == "and"
        return _and(*rules) if cond.op == "and" else _or(*rules)
    return _cmp_rule(cond)


def combine_and(*rules: Rule | bool) -> Rule | bool:
    """AND of rules/constants with folding."""
    kept: list[Rule] = []
    for rule in rules:
        if rule is False:
            return False
        if rule is True:
            continue
        assert not isinstance(rule, bool)
        kept.append(rule)
    return _and(*kept) if kept else True


def combine_or(*rules: Rule | bool) -> Rule | bool:
    """OR of rules/constants with folding."""
    kept: list[Rule] = []
    for rule in rules:
        if rule is True:
            return True
        if rule is False:
            continue
        assert not isinstance(rule, bool)
        kept.append(rule)
    return _or(*kept) if kept else False


def present(path: Path) -> Rule:
    """``IsPresent`` on a path (gates check that a parent ran)."""
    return _present(path)
