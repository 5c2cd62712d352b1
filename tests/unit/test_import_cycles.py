"""No two modules of the project import each other, directly or around a loop, even lazily inside a function:
a cycle is a sign that something sits in the wrong module (the fix is a leaf module, not a lazy import).
Imports under ``if TYPE_CHECKING:`` are for annotations and do not count."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("functions", "statemachine", "local", "stepgraph_cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of the tree but those under ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    found: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports when it runs, at the top or inside a function (``from a import b``
    counts ``a.b`` when that is a module); imports only type checkers see are left out."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def package_of(module: str) -> str:
    return module.rpartition(".")[0]


def test_no_module_imports_itself_around_a_loop() -> None:
    # GIVEN every import in the project's packages (a package's __init__ importing its own modules is fine)
    modules = project_modules()
    graph = {
        name: {m for m in imports_of(path, modules) if m != name and package_of(m) != name}
        for name, path in modules.items()
    }
    # THEN no two modules depend on each other
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_loop_and_ignores_type_checking_imports(tmp_path: Path) -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import functions.names\n"
        "def f():\n    from functions import settings\n",
        encoding="utf-8",
    )
    modules = project_modules()
    assert imports_of(source, modules) == {"functions", "functions.settings"}


def test_the_cli_imports_nothing_of_the_local_cloud_and_of_the_lambda_code_only_the_tool_registry() -> None:
    # GIVEN every import of the CLI package, at the top or inside a function
    modules = project_modules()
    imported = {
        module
        for name, path in modules.items()
        if name.partition(".")[0] == "stepgraph_cli"
        for module in imports_of(path, modules)
    }

    # THEN none is of the local cloud (the CLI is a client of the HTTP API, local or deployed), and of the Lambda
    # code only the tool registry, which `tools markdown` generates the README's tool table from
    assert sorted(m for m in imported if m.partition(".")[0] == "local") == []
    assert sorted(m for m in imported if m.partition(".")[0] == "functions") == [
        "functions.executor.tools",
        "functions.executor.tools.registry",
    ]


def test_starting_the_cli_loads_neither_the_local_cloud_nor_the_lambda_code() -> None:
    # GIVEN a fresh interpreter WHEN it loads the CLI and builds its parser (what every command does first)
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from stepgraph_cli.app import build_parser; build_parser(); "
            "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    # THEN neither the local cloud, nor the Lambda code, nor AWS's SDK came with it
    assert "stepgraph_cli" in loaded
    assert {"local", "functions", "boto3", "moto"} & set(loaded) == set()
