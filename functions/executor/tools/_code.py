"""Static analysis of Python source with the standard library's ``ast``, shared by the ``code.*`` tools.

Each ``code.*`` tool takes ``{"source": "..."}`` (plus its own options) so any step can run on its own; the
analysis here is pure and deterministic, so the same source always yields the same functions, issues and score.
"""

from __future__ import annotations

import ast
import bisect
import gc
import io
import re
import threading
import tokenize
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from functions.errors import ToolError
from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from collections.abc import Iterator

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


_ISSUE_LIST = TypeAdapter(list[Issue])


@dataclass
class _Def:
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    qualname: str
    is_method: bool


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a tree is built and walked.

    A 1 MB source parses into about half a million AST nodes, and every few hundred new objects the collector
    would traverse all of them again: with it on, parsing and walking take twice as long and grow faster than
    linearly. Trees hold no reference cycles, so reference counting frees them; nested and concurrent users
    share one pause (the collector is process-wide), and it resumes when the last one leaves.
    """
    global _gc_pausers, _gc_resume
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            _gc_resume = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_resume:
                gc.enable()


def parse(source: str) -> ast.Module:
    """The module's AST; :class:`InvalidSource` naming line and column when it does not parse."""
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise InvalidSource(f"source does not parse: {exc.msg} at line {exc.lineno}, column {exc.offset}") from None
    except ValueError as exc:  # e.g. null bytes
        raise InvalidSource(f"source does not parse: {exc}") from None
    except (RecursionError, MemoryError):  # Python's parser gives up on expressions nested this deep
        raise InvalidSource(
            "source nests too deeply for Python's parser (an expression thousands of levels deep)"
        ) from None


@dataclass
class _Analysis:
    """What the tools need from a tree, gathered in one pass (each node visited once, no recursion)."""

    defs: list[_Def]
    complexity: dict[int, int]
    """``id(function node)`` -> McCabe complexity."""
    nesting: dict[int, tuple[int, int]]
    """``id(function node)`` -> (deepest block nesting, the line where it is reached)."""
    parents: dict[int, ast.AST]
    """``id(node)`` -> its parent."""
    numbers: list[ast.Constant]


_BRANCHES = frozenset({ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.Assert})
_DEF_TYPES = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})
_NESTING_TYPES = frozenset(_NESTING)
# Parents are kept only for what the magic-number rule climbs through (see ``_is_constant_definition``).
_CLIMBED = frozenset({ast.Constant, ast.UnaryOp, ast.Tuple, ast.List, ast.BinOp})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _kids(node: ast.AST) -> list[ast.AST]:
    """Child nodes, without expression contexts (``Load``/``Store``), which no rule reads."""
    fields = _FIELDS.get(type(node))
    if fields is None:
        fields = _FIELDS[type(node)] = tuple(f for f in node._fields if f != "ctx")
    out: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


def analyze(tree: ast.Module) -> _Analysis:
    """The tree's definitions, complexities, nesting, parents and numeric literals (computed once per tree)."""
    cached = getattr(tree, "_stepgraph_analysis", None)
    if isinstance(cached, _Analysis):
        return cached
    found: list[_Def] = []
    complexity: dict[int, int] = {}
    nesting: dict[int, tuple[int, int]] = {}
    parents: dict[int, ast.AST] = {}
    numbers: list[ast.Constant] = []
    # (node, qualname prefix, in a class body, function whose complexity counts it, function whose nesting
    # counts it (None inside a lambda), nesting level)
    stack: list[tuple[ast.AST, str, bool, int | None, int | None, int]] = [(tree, "", False, None, None, 0)]
    while stack:
        node, prefix, in_class, cfunc, nfunc, level = stack.pop()
        pushed = []
        for child in _kids(node):
            kind = type(child)
            if kind in _CLIMBED:
                parents[id(child)] = node
            if kind in _DEF_TYPES:
                qualname = f"{prefix}{child.name}"  # type: ignore[attr-defined]
                is_func = kind is not ast.ClassDef
                found.append(_Def(child, qualname, in_class and is_func))  # type: ignore[arg-type]
                own = id(child) if is_func else None
                if own is not None:
                    complexity[own] = 1
                    nesting[own] = (0, child.lineno)  # type: ignore[attr-defined]
                pushed.append((child, f"{qualname}.", not is_func, own, own, 0))
                continue
            if cfunc is not None:
                if kind in _BRANCHES:
                    complexity[cfunc] += 1
                elif kind is ast.BoolOp:
                    complexity[cfunc] += len(child.values) - 1  # type: ignore[attr-defined]
                elif kind is ast.comprehension:
                    complexity[cfunc] += 1 + len(child.ifs)  # type: ignore[attr-defined]
                elif kind is ast.match_case:
                    pattern, guard = child.pattern, child.guard  # type: ignore[attr-defined]
                    wildcard = isinstance(pattern, ast.MatchAs) and pattern.pattern is None
                    complexity[cfunc] += 0 if wildcard and guard is None else 1
            child_nfunc, child_level = nfunc, level
            if kind is ast.Lambda:
                child_nfunc = None
            elif nfunc is not None and kind in _NESTING_TYPES:
                # ``elif`` is an If nested in orelse; it is not one level deeper.
                is_elif = (
                    kind is ast.If
                    and type(node) is ast.If
                    and len(node.orelse) == 1
                    and node.orelse[0] is child
                    and child.col_offset == node.col_offset
                )
                if not is_elif:
                    child_level = level + 1
                    if child_level > nesting[nfunc][0]:
                        nesting[nfunc] = (child_level, child.lineno)  # type: ignore[attr-defined]
            if kind is ast.Constant:
                value = child.value  # type: ignore[attr-defined]
                if isinstance(value, (int, float, complex)) and not isinstance(value, bool):
                    numbers.append(child)  # type: ignore[arg-type]
                continue
            pushed.append((child, prefix, in_class, cfunc, child_nfunc, child_level))
        stack.extend(reversed(pushed))
    found.sort(key=lambda d: d.node.lineno)
    result = _Analysis(found, complexity, nesting, parents, numbers)
    tree._stepgraph_analysis = result  # type: ignore[attr-defined]
    return result


_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")
_BLOCK_TYPES = (ast.stmt, ast.ExceptHandler, ast.match_case)


def definitions(tree: ast.Module) -> list[_Def]:
    """Every function and class with its dotted qualname, in source order.

    Definitions are statements, so only statement blocks are walked (a fraction of the tree's nodes), unless
    the whole tree was analyzed already. The same list as ``analyze(tree).defs``.
    """
    cached = getattr(tree, "_stepgraph_analysis", None)
    if isinstance(cached, _Analysis):
        return cached.defs
    found: list[_Def] = []
    stack: list[tuple[ast.AST, str, bool]] = [(tree, "", False)]
    while stack:
        node, prefix, in_class = stack.pop()
        pushed = []
        for block in _BLOCKS:
            for child in getattr(node, block, None) or ():
                if type(child) in _DEF_TYPES:
                    qualname = f"{prefix}{child.name}"
                    is_func = type(child) is not ast.ClassDef
                    found.append(_Def(child, qualname, in_class and is_func))
                    pushed.append((child, f"{qualname}.", not is_func))
                elif isinstance(child, _BLOCK_TYPES):
                    pushed.append((child, prefix, in_class))
        stack.extend(reversed(pushed))
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
            FunctionInfo.model_construct(
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


_RANKS: tuple[tuple[int, Rank], ...] = ((5, "A"), (10, "B"), (20, "C"), (30, "D"), (40, "E"))


def rank(complexity: int) -> Rank:
    """The usual letter for a complexity: A (simple) to F (untestable)."""
    for bound, letter in _RANKS:
        if complexity <= bound:
            return letter
    return "F"


def complexities(tree: ast.Module) -> list[FunctionComplexity]:
    """McCabe complexity (1 + branches: if, loops, except, case, assert, boolean operators, comprehension ifs)."""
    facts = analyze(tree)
    out = []
    for d in facts.defs:
        if isinstance(d.node, _FUNCS):
            cc = facts.complexity[id(d.node)]
            out.append(
                FunctionComplexity.model_construct(
                    qualname=d.qualname, lineno=d.node.lineno, complexity=cc, rank=rank(cc)
                )
            )
    return out


class _Enclosing:
    """The innermost function around a line, in time logarithmic in the number of functions.

    Function spans nest (an inner one lies within its outer one), so from the last function starting at or
    before the line, following parents reaches the innermost one containing it in at most nesting-depth steps.
    """

    def __init__(self, defs: list[_Def]) -> None:
        funcs = sorted((d for d in defs if isinstance(d.node, _FUNCS)), key=lambda d: d.node.lineno)
        self.starts = [d.node.lineno for d in funcs]
        self.ends = [d.node.end_lineno or d.node.lineno for d in funcs]
        self.names = [d.qualname for d in funcs]
        self.parents: list[int] = []
        stack: list[int] = []
        for i, start in enumerate(self.starts):
            while stack and self.ends[stack[-1]] < start:
                stack.pop()
            self.parents.append(stack[-1] if stack else -1)
            stack.append(i)

    def __call__(self, line: int) -> str | None:
        i = bisect.bisect_right(self.starts, line) - 1
        while i >= 0 and self.ends[i] < line:
            i = self.parents[i]
        return self.names[i] if i >= 0 else None


def _is_constant_definition(parents: dict[int, ast.AST], node: ast.AST) -> bool:
    """A literal on the right of ``UPPER_CASE = ...`` (module or class level) names itself: not magic."""
    parent = parents.get(id(node))
    while isinstance(parent, (ast.UnaryOp, ast.Tuple, ast.List, ast.BinOp)):
        parent = parents.get(id(parent))
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
    facts = analyze(tree)
    defs = facts.defs
    enclosing = _Enclosing(defs)
    found: list[dict[str, Any]] = []

    def add(kind: IssueKind, line: int, message: str, function: str | None = None) -> None:
        if function is None:
            function = enclosing(line)
        found.append({"kind": kind, "line": line, "severity": SEVERITY[kind], "message": message, "function": function})

    try:
        # Only a source that mentions a marker is tokenized (the slowest pass, needed to tell comments apart).
        tokens = tokenize.generate_tokens(io.StringIO(source).readline) if _TODO.search(source) else iter(())
        for tok in tokens:
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
            depth, line = facts.nesting[id(node)]
            if depth > options.max_nesting:
                add(
                    "deep_nesting",
                    line,
                    f"{d.qualname} nests blocks {depth} deep (limit {options.max_nesting})",
                    d.qualname,
                )
            cc = facts.complexity[id(node)]
            if cc > options.max_complexity:
                add(
                    "high_complexity",
                    node.lineno,
                    f"{d.qualname} has cyclomatic complexity {cc} (limit {options.max_complexity})",
                    d.qualname,
                )

    parents = facts.parents
    allowed = set(options.allowed_numbers)
    for const in sorted(facts.numbers, key=lambda c: (c.lineno, c.col_offset)):
        if _is_constant_definition(parents, const):
            continue
        parent = parents.get(id(const))
        value: Any = const.value
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub):
            value = -value
        if value not in allowed:
            add("magic_number", const.lineno, f"magic number {value!r}: name it as a constant")

    found.sort(key=_by_line_then_kind)
    # Tens of thousands in a large source: pydantic-core builds them from dicts faster than Python can.
    return _ISSUE_LIST.validate_python(found)


def _by_line_then_kind(issue: dict[str, Any]) -> tuple[int, str]:
    return issue["line"], issue["kind"]


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


def _line_starts(data: bytes) -> list[int]:
    """Byte offset of each line's start (index 1 is line 1), splitting lines as the parser does."""
    starts = [0, 0]
    for match in re.finditer(rb"\r\n|\r|\n", data):
        starts.append(match.end())
    return starts


def _header_colon_line(node: ast.AST, data: bytes, starts: list[int]) -> int | None:
    """The line of the ``:`` ending a ``def``/``class`` header.

    Scans the UTF-8 source forward from the end of the header's last part (arguments, defaults, return
    annotation, bases, type parameters), skipping comments: only brackets, blanks and comments can follow it
    before the colon. Each header's tail is scanned once, so all of them take linear time together.
    """
    parts: list[ast.AST] = list(getattr(node, "type_params", []) or [])
    if isinstance(node, ast.ClassDef):
        parts += [*node.bases, *node.keywords]
    elif isinstance(node, _FUNCS):
        a = node.args
        parts += [*a.posonlyargs, *a.args, *a.kwonlyargs, *a.defaults]
        parts += [d for d in a.kw_defaults if d is not None]
        parts += [x for x in (a.vararg, a.kwarg, node.returns) if x is not None]
    line, col = node.lineno, node.col_offset  # type: ignore[attr-defined]
    for part in parts:
        end = (part.end_lineno or 0, part.end_col_offset or 0)  # type: ignore[attr-defined]
        if end > (line, col):
            line, col = end
    if line >= len(starts):
        return None
    pos, size = starts[line] + col, len(data)
    while pos < size:
        char = data[pos]
        if char == 0x3A:  # ":"
            return bisect.bisect_right(starts, pos) - 1
        if char == 0x23:  # "#": skip the comment
            newline = data.find(b"\n", pos)
            pos = size if newline < 0 else newline
            continue
        pos += 1
    return None


def add_docstrings(source: str, tree: ast.Module) -> tuple[str, list[str]]:
    """Insert a placeholder docstring into each function and class that lacks one (a mechanical fix).

    The docstring goes on its own line after the header's colon, indented as the first statement of the body;
    a header whose colon line ends in a backslash continuation is left alone.
    """
    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", source)  # lines as the parser counts them
    data = source.encode()
    starts = _line_starts(data)
    fixes: list[tuple[int, str, str]] = []
    for d in definitions(tree):
        node = d.node
        if ast.get_docstring(node, clean=False) is not None or (node.name.startswith("__") and node.name != "__init__"):
            continue
        first = node.body[0]
        colon_line = _header_colon_line(node, data, starts)
        if colon_line is None or first.lineno == colon_line:  # ``def f(): return 1``: no line for a docstring
            continue
        if lines[colon_line - 1].rstrip().endswith("\\"):
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
    inserted: dict[int, list[str]] = {}
    for index, line, _ in sorted(fixes):
        inserted.setdefault(index, []).append(line)
    out: list[str] = []
    for index, line in enumerate(lines):
        out.append(line)
        out.extend(inserted.get(index + 1, ()))
    revised = "".join(out)
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
