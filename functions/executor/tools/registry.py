"""The tool registry: finds every tool module of this package and serves tools by name.

Use the module functions (``registry.get``, ``names``, ``params_model``, ``describe``, ``describe_all``);
the module itself satisfies ``statemachine``'s ``ToolCatalog`` protocol. Modules are discovered on first
use, so importing the registry costs nothing until a tool is asked for, and ``get(name)`` imports only
the tool's own module when it is named after the tool (``http.get`` -> ``http_get.py``), as the executor
needs just one tool per invocation.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from functions.errors import NotFoundError
from functions.executor.tools.base import OpenParams, Tool
from functions.settings import get_settings

if TYPE_CHECKING:
    from types import ModuleType

    from functions.settings import Settings

__all__ = [
    "LAMBDA_PREFIX",
    "ToolRegistry",
    "UnknownTool",
    "default",
    "describe",
    "describe_all",
    "get",
    "lambda_problem",
    "names",
    "params_model",
]

LAMBDA_PREFIX = "lambda:"
_PACKAGE = "functions.executor.tools"
# Modules of the package that are not tools; helper modules start with an underscore.
_NOT_TOOLS = frozenset({"base", "registry"})


class UnknownTool(NotFoundError):
    """No tool has this name (404 through the API)."""

    code = "UnknownTool"


def function_name(target: str) -> str:
    """The bare function name of a Lambda ``FunctionName`` in any form Lambda accepts.

    ``name``, ``name:qualifier``, ``account:function:name[:qualifier]`` and
    ``arn:partition:lambda:region:account:function:name[:qualifier]``; surrounding blanks ignored.
    """
    parts = target.strip().split(":")
    lowered = [p.lower() for p in parts]
    if "function" in lowered[:-1]:
        return parts[lowered.index("function") + 1].strip()
    if lowered[0] == "arn" and len(parts) > 6:
        return parts[6].strip()
    return parts[0].strip()


def lambda_problem(target: str, settings: Settings | None = None) -> str | None:
    """Why a ``lambda:`` node may not invoke ``target``, or None.

    The stack's own functions (``<stack>-executor``, ``-api``, ``-events`` and any other ``<stack>-`` name that
    is not a user function, ``<stack>-user-*``) are refused in every name or ARN form and any letter case: a graph
    invoking the executor itself could write into other runs' records.
    """
    settings = settings or get_settings()
    name = function_name(target).lower()
    prefix = settings.prefix.lower() + "-"
    own = {function_name(settings.executor_arn).lower()}
    if name in own or (name.startswith(prefix) and not name.startswith(prefix + "user-")):
        return (
            f"lambda:{target.strip()} names one of this stack's own functions; a lambda: node may only call "
            f"your functions ({settings.prefix}-user-*)"
        )
    return None


class LambdaParams(OpenParams):
    """Params of a ``lambda:<name or ARN>`` node: any JSON object, passed to the user's function as is."""


def tool_from_module(module: ModuleType) -> Tool:
    """Build the :class:`Tool` a module declares; a module missing a part is a bug, named here."""
    missing = [a for a in ("NAME", "DESCRIPTION", "Params", "Output", "run") if not hasattr(module, a)]
    if missing:
        raise TypeError(f"tool module {module.__name__} lacks {', '.join(missing)}")
    params, output = module.Params, module.Output
    for attr, model in (("Params", params), ("Output", output)):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{module.__name__}.{attr} must be a pydantic model")
    description = str(module.DESCRIPTION).strip()
    if not description or "\n" in description:
        raise TypeError(f"{module.__name__}.DESCRIPTION must be one line")
    return Tool(
        name=str(module.NAME),
        description=description,
        params_model=params,
        output_model=output,
        run=module.run,
        module=module.__name__,
        isolated=bool(getattr(module, "ISOLATED", False)),
    )


class ToolRegistry:
    """Tools by name, discovered from the modules of a package (``functions.executor.tools`` by default)."""

    def __init__(self, package: str = _PACKAGE) -> None:
        self._package = package
        self._tools: dict[str, Tool] | None = None
        self._single: dict[str, Tool] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Tool]:
        tools = self._tools
        if tools is not None:
            return tools
        with self._lock:
            if self._tools is None:
                self._tools = self._discover()
            return self._tools

    def _discover(self) -> dict[str, Tool]:
        package = importlib.import_module(self._package)
        found: dict[str, Tool] = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name.startswith("_") or info.name in _NOT_TOOLS or info.ispkg:
                continue
            tool = tool_from_module(importlib.import_module(f"{self._package}.{info.name}"))
            if tool.name in found:
                raise TypeError(f"tool {tool.name!r} is declared by {found[tool.name].module} and {tool.module}")
            found[tool.name] = tool
        return dict(sorted(found.items()))

    def register(self, tool: Tool) -> None:
        """Add a tool at run time (tests, plug-ins); a name already taken is an error."""
        tools = self._load()
        with self._lock:
            if tool.name in tools:
                raise ValueError(f"tool {tool.name!r} is already registered")
            tools[tool.name] = tool

    def _fast(self, name: str) -> Tool | None:
        """The tool from the module its name suggests (``http.get`` -> ``http_get``), without importing the rest.

        Only a shortcut for cold starts: a tool whose module is named otherwise is found by full discovery.
        """
        module_name = name.replace(".", "_")
        if not module_name.isidentifier() or module_name.startswith("_") or module_name in _NOT_TOOLS:
            return None
        cached = self._single.get(name)
        if cached is not None:
            return cached
        try:
            module = importlib.import_module(f"{self._package}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{self._package}.{module_name}":
                raise
            return None
        if getattr(module, "NAME", None) != name:
            return None
        tool = tool_from_module(module)
        self._single[name] = tool
        return tool

    def get(self, name: str) -> Tool:
        """The tool called ``name``; :class:`UnknownTool` (a ``NotFoundError``) when there is none."""
        if self._tools is None:
            fast = self._fast(name)
            if fast is not None:
                return fast
        tool = self._load().get(name)
        if tool is None:
            if name.startswith(LAMBDA_PREFIX):
                raise UnknownTool(f"{name!r} is a user Lambda invoked by its Task state, not a registry tool")
            raise UnknownTool(f"unknown tool {name!r}; known tools: {', '.join(self._load())}")
        return tool

    def names(self) -> list[str]:
        """Registered tool names, sorted (``lambda:`` tools are not listed: any name is accepted)."""
        return list(self._load())

    def params_model(self, name: str) -> type[BaseModel] | None:
        """The params model for validation; ``None`` for an unknown tool; any object for ``lambda:<name>``."""
        if name.startswith(LAMBDA_PREFIX) and len(name) > len(LAMBDA_PREFIX):
            return LambdaParams
        tool = self._load().get(name)
        return tool.params_model if tool else None

    def describe(self, name: str) -> dict[str, Any]:
        """``{"name", "description", "params_schema", "output_schema"}`` of one tool."""
        return self.get(name).describe()

    def describe_all(self) -> list[dict[str, Any]]:
        """Every tool described, sorted by name."""
        return [tool.describe() for tool in self._load().values()]


default = ToolRegistry()

get = default.get
names = default.names
params_model = default.params_model
describe = default.describe
describe_all = default.describe_all
