"""Static analysis of Python source with the standard library's ``ast``, shared by the ``code.*`` tools.

Each ``code.*`` tool takes ``{"source": "..."}`` (plus its own options) so any step can run on its own; the
analysis here is pure and deterministic, so the same source always yields the same functions, issues and score.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from functions.errors import ToolError
from functions.executor.tools.base import StrictParams

MAX_SOURCE_CHARS = 1_000_000

IssueKind = Literal[
    "todo", "long_line", "deep_nesting", "magic_number", "missing_docstring", "high_complexity", "trailing_whitespace"
]
Severity = Literal["info", "warning", "error"]
Rank = Literal["A", "B", "C", "D", "E", "F"]

SEVERITY: dict[str, Severity] = {
    "todo": "info",
    "trailing_whitespace": "info",
    "long_line": "warning",
    "magic_number": "warning",
    "missing_docstring": "warning",
    "deep_nesting": "error",
    "high_complexity": "error",
}
# Score penalty per issue of each kind (see ``score``).
WEIGHT: dict[str, float] = {
    "todo": 0.5,
    "trailing_whitespace": 0.1,
    "long_line": 0.25,
    "magic_number": 0.5,
    "missing_docstring": 1.0,
    "deep_nesting": 2.0,
    "high_complexity": 2.0,
}
_TODO = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
_NESTING: tuple[type[ast.AST], ...] = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
)
if hasattr(ast, "TryStar"):
    _NESTING = (*_NESTING, ast.TryStar)
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


class InvalidSource(ToolError):
    """The source is not valid Python; the message gives the line and column."""

    code = "InvalidSource"


class SourceParams(StrictParams):
    """What every ``code.*`` step takes: the Python source to review."""

    source: str = Field(max_length=MAX_SOURCE_CHARS, description="Python source code.")


class IssueOptions(BaseModel):
    """Thresholds of ``code.detect_issues``, ``code.suggest`` and ``code.score`` (same defaults everywhere)."""

    max_line_length: int = Field(default=100, ge=40, le=500, description="Longer lines are long_line issues.")
    max_nesting: int = Field(default=3, ge=1, le=20, description="Deeper block nesting in a function is an issue.")
    max_complexity: int = Field(default=10, ge=1, le=100, description="Higher cyclomatic complexity is an issue.")
    allowed_numbers: list[float] = Field(
        default=[-1, 0, 1, 2], description="Numeric literals that are never magic numbers."
    )


class FunctionInfo(BaseModel):
    name: str
    qualname: str = Field(description="Dotted path: Class.method, outer.inner.")
    lineno: int
    end_lineno: int
    lines: int
    args: list[str]
    is_async: bool
    is_method: bool
    has_docstring: bool
    decorators: list[str]


class FunctionComplexity(BaseModel):
    qualname: str
    lineno: int
    complexity: int = Field(description="McCabe cyclomatic complexity: 1 + decision points.")
    rank: Rank = Field(description="A: 1-5, B: 6-10, C: 11-20, D: 21-30, E: 31-40.")


class Issue(BaseModel):
    kind: IssueKind
    line: int
    severity: Severity
    message: str
    function: str | None = Field(default=None, description="Qualname of the enclosing function, if any.")


@dataclass
class _Def:
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    qualname: str
    is_method: bool


def parse(source: str) -> ast.Module:
    """The module's AST; :class:`InvalidSource` naming line and column when it does not parse."""
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise InvalidSource(f"source does not parse: {exc.msg} at line {exc.lineno}, column {exc.offset}") from None
    except ValueError as exc:  # e.g. null bytes
        raise InvalidSource(f"source does not parse: {exc}") from None


def definitions(tree: ast.Module) -> list[_Def]:
    """Every function and class with its dotted qualname, in source order."""
    found: list[_Def] = []

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (*_FUNCS, ast.ClassDef)):
                qualname = f"{prefix}{child.name}"
                found.append(_Def(child, qualname, in_class and isinstance(child, _FUNCS)))
                visit(child, f"{qualname}.", isinstance(child, ast.ClassDef))
            else:
                visit(child, prefix, in_class)

    visit(tree, "", False)
    found.sort(key=lambda d: d.node.lineno)
    return found


def functions(tree: ast.Module) -> list[FunctionInfo]:
    """Functions and methods with their line span, arguments and docstring presence."""
    out = []
    for d in definitions(tree):
        node = d.node
        if isinstance(node, ast.ClassDef):
            continue
        a = node.args
        args = [x.arg for x in (*a.posonlyargs, *a.args)]
        args += [f"*{a.vararg.arg}"] if a.vararg else []
        args += [x.arg for x in a.kwonlyargs]
        args += [f"**{a.kwarg.arg}"] if a.kwarg else []
        end = node.end_lineno or node.lineno
        out.append(
            FunctionInfo(
                name=node.name,
                qualname=d.qualname,
                lineno=node.lineno,
                end_lineno=end,
                lines=end - node.lineno + 1,
                args=args,
                is_async=isinstance(node, ast.AsyncFunctionDef),
                is_method=d.is_method,
                has_docstring=ast.get_docstring(node, clean=False) is not None,
                decorators=[ast.unparse(dec) for dec in node.decorator_list],
            )
        )
    return out


def _own_nodes(func: ast.AST) -> list[ast.AST]:
    """Nodes of a function's body, not descending into nested functions, classes or lambdas' own scopes."""
    nodes: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (*_FUNCS, ast.ClassDef)):
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def cyclomatic(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """McCabe complexity: 1 + branches (if, loops, except, case, assert, boolean operators, comprehension ifs)."""
    score = 1
    for node in _own_nodes(func):
        if isinstance(node, (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.Assert)):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        elif isinstance(node, ast.match_case):
            is_wildcard = isinstance(node.pattern, ast.MatchAs) and node.pattern.pattern is None
            score += 0 if is_wildcard and node.guard is None else 1
    return score


_RANKS: tuple[tuple[int, Rank], ...] = ((5, "A"), (10, "B"), (20, "C"), (30, "D"), (40, "E"))


def rank(complexity: int) -> Rank:
    """The usual letter for a complexity: A (simple) to F (untestable)."""
    return next((letter for bound, letter in _RANKS if complexity <= bound), "F")


def complexities(tree: ast.Module) -> list[FunctionComplexity]:
    out = []
    for d in definitions(tree):
        if isinstance(d.node, _FUNCS):
            cc = cyclomatic(d.node)
            out.append(FunctionComplexity(qualname=d.qualname, lineno=d.node.lineno, complexity=cc, rank=rank(cc)))
    return out


def _max_nesting(func: ast.AST) -> tuple[int, int]:
    """The deepest block nesting inside a function (not nested functions) and the line where it is reached."""
    best = (0, getattr(func, "lineno", 1))

    def walk(node: ast.AST, depth: int) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (*_FUNCS, ast.ClassDef, ast.Lambda)):
                continue
            # ``elif`` is an If nested in orelse; it is not one level deeper.
            is_elif = (
                isinstance(node, ast.If)
                and isinstance(child, ast.If)
                and len(node.orelse) == 1
                and node.orelse[0] is child
                and child.col_offset == node.col_offset
            )
            deeper = isinstance(child, _NESTING) and not is_elif
            level = depth + 1 if deeper else depth
            if level > best[0]:
                best = (level, getattr(child, "lineno", best[1]))
            walk(child, level)

    walk(func, 0)
    return best


def _enclosing(defs: list[_Def], line: int) -> str | None:
    name = None
    for d in defs:
        if isinstance(d.node, _FUNCS) and d.node.lineno <= line <= (d.node.end_lineno or d.node.lineno):
            name = d.qualname  # later (inner) definitions win
    return name


def _is_constant_definition(parents: dict[ast.AST, ast.AST], node: ast.AST) -> bool:
    """A literal on the right of ``UPPER_CASE = ...`` (module or class level) names itself: not magic."""
    parent = parents.get(node)
    while isinstance(parent, (ast.UnaryOp, ast.Tuple, ast.List, ast.BinOp)):
        parent = parents.get(parent)
    if isinstance(parent, ast.Assign):
        targets = parent.targets
    elif isinstance(parent, ast.AnnAssign):
        targets = [parent.target]
    else:
        return False
    names: list[ast.expr] = []
    for target in targets:
        names.extend(target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target])
    return all(isinstance(t, ast.Name) and t.id.isupper() for t in names)


def detect_issues(source: str, tree: ast.Module, options: IssueOptions) -> list[Issue]:
    """Every issue of the source, sorted by line then kind."""
    defs = definitions(tree)
    issues: list[Issue] = []

    def add(kind: IssueKind, line: int, message: str, function: str | None = None) -> None:
        if function is None:
            function = _enclosing(defs, line)
        issues.append(Issue(kind=kind, line=line, severity=SEVERITY[kind], message=message, function=function))

    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and (m := _TODO.search(tok.string)):
                add("todo", tok.start[0], f"{m.group(1)} comment: {tok.string.lstrip('#').strip()}")
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - ast.parse already accepted the source
        pass

    for number, text in enumerate(source.splitlines(), start=1):
        if len(text) > options.max_line_length:
            add("long_line", number, f"line is {len(text)} characters long (limit {options.max_line_length})")
        if text != text.rstrip():
            add("trailing_whitespace", number, "trailing whitespace")

    for d in defs:
        node = d.node
        if ast.get_docstring(node, clean=False) is None and not (
            node.name.startswith("__") and node.name != "__init__"
        ):
            what = "class" if isinstance(node, ast.ClassDef) else "method" if d.is_method else "function"
            add("missing_docstring", node.lineno, f"{what} {d.qualname} has no docstring", d.qualname)
        if isinstance(node, _FUNCS):
            depth, line = _max_nesting(node)
            if depth > options.max_nesting:
                add(
                    "deep_nesting",
                    line,
                    f"{d.qualname} nests blocks {depth} deep (limit {options.max_nesting})",
                    d.qualname,
                )
            cc = cyclomatic(node)
            if cc > options.max_complexity:
                add(
                    "high_complexity",
                    node.lineno,
                    f"{d.qualname} has cyclomatic complexity {cc} (limit {options.max_complexity})",
                    d.qualname,
                )

    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    allowed = set(options.allowed_numbers)
    for const in ast.walk(tree):
        if not isinstance(const, ast.Constant) or isinstance(const.value, bool):
            continue
        if not isinstance(const.value, (int, float, complex)) or _is_constant_definition(parents, const):
            continue
        parent = parents.get(const)
        value = -const.value if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub) else const.value
        if value not in allowed:
            add("magic_number", const.lineno, f"magic number {value!r}: name it as a constant")

    issues.sort(key=lambda i: (i.line, i.kind))
    return issues


SUGGESTION: dict[str, str] = {
    "todo": "Resolve the {text} or track it in an issue, then remove the comment.",
    "long_line": "Split the line, e.g. wrap arguments or extract a variable.",
    "deep_nesting": "Flatten {function}: return early, or move the inner blocks into a helper function.",
    "magic_number": "Give the number a name: a module-level UPPER_CASE constant explains what it means.",
    "missing_docstring": "Add a one-line docstring to {function} saying what it does and why.",
    "high_complexity": "Split {function} into smaller functions; each branch is a test case to write.",
    "trailing_whitespace": "Remove the trailing whitespace.",
}
PRIORITY: dict[str, int] = {
    "high_complexity": 1,
    "deep_nesting": 1,
    "missing_docstring": 2,
    "magic_number": 2,
    "long_line": 3,
    "todo": 3,
    "trailing_whitespace": 4,
}


def _header_ends(source: str) -> dict[int, int]:
    """For each ``def``/``class`` keyword line, the line of the ``:`` that ends its header."""
    ends: dict[int, int] = {}
    start: int | None = None
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if start is None:
            if tok.type == tokenize.NAME and tok.string in ("def", "class"):
                start, depth = tok.start[0], 0
            continue
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
            ends[start] = tok.start[0]
            start = None
    return ends


def add_docstrings(source: str, tree: ast.Module) -> tuple[str, list[str]]:
    """Insert a placeholder docstring into each function and class that lacks one (a mechanical fix)."""
    lines = source.splitlines(keepends=True)
    header_ends = _header_ends(source)
    fixes: list[tuple[int, str, str]] = []
    for d in definitions(tree):
        node = d.node
        if ast.get_docstring(node, clean=False) is not None or (node.name.startswith("__") and node.name != "__init__"):
            continue
        first = node.body[0]
        colon_line = header_ends.get(node.lineno)
        if colon_line is None or first.lineno == colon_line:  # ``def f(): return 1``: no line for a docstring
            continue
        match = re.match(r"[ \t]*", lines[first.lineno - 1])
        indent = match.group(0) if match else ""
        words = node.name.strip("_").replace("_", " ") or node.name
        if isinstance(node, _FUNCS):
            text, after = f"{words[0].upper()}{words[1:]}.", ""
        else:
            text = f"{'An' if node.name[:1].lower() in 'aeiou' else 'A'} {node.name}."
            after = "\n" if lines[first.lineno - 1].strip() else ""  # PEP 257: a blank line after a class docstring
        fixes.append((colon_line, f'{indent}"""{text}"""\n{after}', d.qualname))
    for index, line, _ in sorted(fixes, reverse=True):
        lines.insert(index, line)
    revised = "".join(lines)
    try:
        ast.parse(revised)
    except SyntaxError:  # pragma: no cover - defensive: never hand back code that does not parse
        return source, []
    return revised, [f"added a docstring to {q}" for _, _, q in sorted(fixes)]


def strip_trailing_whitespace(source: str) -> tuple[str, int]:
    lines = source.splitlines(keepends=True)
    out, fixed = [], 0
    for line in lines:
        body = line.rstrip("\r\n")
        end = line[len(body) :]
        if body != body.rstrip():
            fixed += 1
        out.append(body.rstrip() + end)
    return "".join(out), fixed


@dataclass
class Score:
    quality_score: float
    penalty: float
    size: float
    breakdown: dict[str, float]


def score(source: str, tree: ast.Module, issues: list[Issue]) -> Score:
    """``10 * size / (size + penalty)``: 10 with no issues, falling as weighted issues pile up per unit of code.

    ``size`` is the number of functions and classes plus one per 40 code lines (at least 1), so the same
    issue costs more in a small file; fixing any issue lowers the penalty and so raises the score.
    """
    breakdown: dict[str, float] = {}
    for issue in issues:
        breakdown[issue.kind] = breakdown.get(issue.kind, 0.0) + WEIGHT[issue.kind]
    penalty = sum(breakdown.values())
    code_lines = sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))
    size = max(1.0, len(definitions(tree)) + code_lines / 40)
    return Score(
        quality_score=round(10 * size / (size + penalty), 2),
        penalty=round(penalty, 4),
        size=round(size, 4),
        breakdown={k: round(v, 4) for k, v in sorted(breakdown.items())},
    )
