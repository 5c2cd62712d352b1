"""Registered tools behind the routes: check, package and publish a user's Python tool as its own Lambda function.

Each registered tool is the function ``<prefix>-tool-<name with '.' as '_'>`` (ToolRole: its own logs only,
no environment), whose zip holds the user's ``tool.py``, the bootstrap handler
(:mod:`functions.tools_runtime.bootstrap`) and ``stepgraph_tool.json`` (name, schema, timeout, memory).
Every ``POST``/``PUT`` publishes a Lambda version; graphs invoke the version they were compiled with.
Everything is checked before the first AWS call, and a failure after it deletes what it created.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from functions.errors import ConflictError, NotFoundError, UpstreamError
from functions.store.table import now_iso
from functions.store.tools import ToolVersion
from statemachine.errors import LimitError, SpecError

if TYPE_CHECKING:
    from functions.api.services import Services

MAX_SOURCE_BYTES = 256 * 1024
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,29}(\.[a-z][a-z0-9-]{0,29}){0,3}$")
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 1, 840
"""A tool's own timeout; its function gets 5 s more (the bootstrap stops the tool first and reports it)."""
FUNCTION_MARGIN_SECONDS = 5
RUNTIME: Final = "python3.13"
BOOTSTRAP = Path(__file__).resolve().parent.parent / "tools_runtime" / "bootstrap.py"


def function_name(prefix: str, name: str) -> str:
    return f"{prefix}-tool-{name.replace('.', '_')}"


def _bad(loc: str, message: str, **extra: Any) -> SpecError:
    return SpecError(message, [{"loc": loc, "message": message, **extra}])


def check_registration(services: Services, body: dict[str, Any], *, name: str) -> dict[str, Any]:
    """The checked registration (name, description, params_schema, source, timeout_seconds); 413/422 otherwise."""
    from functions.executor.tools._models import check_schema

    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise _bad(
            "name",
            "a tool name is lowercase dotted words of letters, digits and '-' (like acme.slugify), at most 4 dots",
        )
    if len(function_name(services.settings.prefix, name)) > 64:
        raise _bad("name", f"tool name {name!r} is too long for a Lambda function name under this stack")
    source = body.get("source")
    if not isinstance(source, str) or not source.strip():
        raise _bad("source", "source must be Python text defining run(params)")
    size = len(source.encode())
    if size > MAX_SOURCE_BYTES:
        raise LimitError(
            f"the source is {size} bytes; the limit is {MAX_SOURCE_BYTES} bytes",
            [{"loc": "source", "message": f"source over {MAX_SOURCE_BYTES} bytes ({size})"}],
            status=413,
        )
    try:
        tree = ast.parse(source, filename="tool.py")
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno is not None else ""
        raise SpecError(
            f"the source does not parse: {where}{exc.msg}",
            [{"loc": "source", "message": exc.msg, "position": {"line": exc.lineno, "col": exc.offset}}],
        ) from None
    except (RecursionError, MemoryError):  # Python's parser gives up on an expression nested this deep
        raise _bad("source", "the source nests too deeply for Python's parser (an expression thousands deep)") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body):
        raise _bad("source", "the source must define a top-level function run(params)")
    schema = body.get("params_schema", {"type": "object"})
    if not isinstance(schema, dict):
        raise _bad("params_schema", "params_schema must be a JSON Schema object")
    try:
        check_schema(schema)
    except ValueError as exc:
        raise _bad("params_schema", str(exc)) from None
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 1024:
        raise _bad("description", "description must be text of at most 1024 characters")
    timeout = body.get("timeout_seconds", 30)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not (MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS)
    ):
        raise _bad(
            "timeout_seconds", f"timeout_seconds must be an integer {MIN_TIMEOUT_SECONDS}..{MAX_TIMEOUT_SECONDS}"
        )
    return {
        "name": name,
        "description": description,
        "params_schema": schema,
        "source": source,
        "timeout_seconds": timeout,
    }


def package(checked: dict[str, Any], memory_mb: int) -> bytes:
    """The function's zip: the user's tool.py, the bootstrap handler and the tool's config."""
    config = {
        "name": checked["name"],
        "params_schema": checked["params_schema"],
        "timeout_seconds": checked["timeout_seconds"],
        "memory_mb": memory_mb,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for filename, text in (
            ("tool.py", checked["source"]),
            ("stepgraph_bootstrap.py", BOOTSTRAP.read_text(encoding="utf-8")),
            ("stepgraph_tool.json", json.dumps(config)),
        ):
            info = zipfile.ZipInfo(filename, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def _lambda_error(operation: str, exc: ClientError) -> Exception:
    code = exc.response["Error"].get("Code", "")
    if code in ("ResourceConflictException", "PreconditionFailedException"):
        return ConflictError(f"{operation}: the tool's function is being changed; retry")
    if code == "ResourceNotFoundException":
        return NotFoundError(f"{operation}: the tool's function is gone (the tool was deleted meanwhile)")
    return UpstreamError(f"{operation} failed: {code}")


def _wait_ready(services: Services, name: str) -> None:
    """Wait (bounded) until the function's last change is done: Lambda refuses a change or a publish before."""
    for _ in range(40):
        config = services.lambda_.get_function_configuration(FunctionName=name)
        if config.get("State", "Active") != "Pending" and config.get("LastUpdateStatus", "Successful") != "InProgress":
            return
        time.sleep(0.5)


def _describe(version: ToolVersion) -> dict[str, Any]:
    return {"name": version.name, "version": version.version, "kind": "registered"}


def register(services: Services, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /tools``: create the function, publish version 1, record it (the function is deleted on failure)."""
    from functions.executor.tools import registry

    name = body.get("name")
    checked = check_registration(services, body, name=name if isinstance(name, str) else "")
    if name in set(registry.names()):
        raise ConflictError(f"{name!r} is a built-in tool; choose another name")
    if services.tools.find(checked["name"]) is not None:
        raise ConflictError(f"tool {name!r} already exists; PUT /tools/{name} publishes a new version")
    settings = services.settings
    fname = function_name(settings.prefix, checked["name"])
    try:
        created = services.lambda_.create_function(
            FunctionName=fname,
            Runtime=RUNTIME,
            Architectures=["arm64"],
            Role=settings.tool_role_arn,
            Handler="stepgraph_bootstrap.handler",
            Code={"ZipFile": package(checked, settings.tool_memory_mb)},
            Description=f"stepgraph registered tool {checked['name']}"[:256],
            Timeout=checked["timeout_seconds"] + FUNCTION_MARGIN_SECONDS,
            MemorySize=settings.tool_memory_mb,
            Publish=True,
            Tags={"stepgraph:tool": checked["name"]},
        )
    except ClientError as exc:
        if exc.response["Error"].get("Code") == "ResourceConflictException":
            raise ConflictError(f"tool {name!r} already exists") from exc
        raise _lambda_error("CreateFunction", exc) from exc
    try:
        _wait_ready(services, fname)
        version = _version(checked, 1, fname, str(created["Version"]))
        services.tools.create(version)
    except Exception:
        with contextlib.suppress(ClientError):
            services.lambda_.delete_function(FunctionName=fname)
        raise
    return _describe(version)


def _version(checked: dict[str, Any], number: int, fname: str, function_version: str) -> ToolVersion:
    return ToolVersion(
        name=checked["name"],
        version=number,
        function_name=fname,
        function_version=function_version,
        description=checked["description"],
        params_schema=checked["params_schema"],
        timeout_seconds=checked["timeout_seconds"],
        source_sha256=hashlib.sha256(checked["source"].encode()).hexdigest(),
        created_at=now_iso(),
    )


def publish(services: Services, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /tools/{name}``: new code and settings, published as the next version (graphs keep theirs)."""
    current = services.tools.get(name)
    checked = check_registration(services, body, name=name)
    if not services.tools.usable(name):
        raise ConflictError(f"tool {name!r} is being deleted")
    fname = current.function_name
    code = package(checked, services.settings.tool_memory_mb)
    code_sha256 = base64.b64encode(hashlib.sha256(code).digest()).decode()
    timeout = checked["timeout_seconds"] + FUNCTION_MARGIN_SECONDS
    try:
        _wait_ready(services, fname)
        services.lambda_.update_function_configuration(FunctionName=fname, Timeout=timeout)
        _wait_ready(services, fname)
        services.lambda_.update_function_code(FunctionName=fname, ZipFile=code, Publish=False)
        _wait_ready(services, fname)
        # CodeSha256: Lambda refuses to publish code another update put there meanwhile.
        published = services.lambda_.publish_version(FunctionName=fname, CodeSha256=code_sha256)
    except ClientError as exc:
        raise _lambda_error("publishing the tool's function", exc) from exc
    if published.get("CodeSha256") != code_sha256 or published.get("Timeout") != timeout:
        # Another update's code or timeout is in the version: record nothing (the version may be the other's).
        raise ConflictError(f"tool {name!r} was being changed by another update at the same time; retry")
    version = _version(checked, current.version + 1, fname, str(published["Version"]))
    services.tools.add_version(version)
    return _describe(version)


def tool_names(spec: Any) -> set[str]:
    """The tools a graph spec's nodes name (built-in, registered or ``lambda:``)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("nodes"), list):
        return set()
    return {n["tool"] for n in spec["nodes"] if isinstance(n, dict) and isinstance(n.get("tool"), str)}


def users(services: Services, name: str) -> tuple[list[str], list[str]]:
    """Graphs (not deleted) with a version that uses the tool, and graphs being created or updated with it now
    (pinned in the last ``HOLD_SECONDS`` and not, or not yet, recorded so)."""
    using, pending = [], []
    now = time.time()
    for pin in services.tools.pins(name):
        state = services.graphs.state(pin.graph_id)
        if state == "deleted":
            continue
        if state == "live" and any(name in tool_names(v.spec) for v in services.graphs.versions(pin.graph_id)):
            using.append(pin.graph_id)
        elif pin.recent(now):
            pending.append(pin.graph_id)
    return using, pending


def delete(services: Services, name: str) -> None:
    """``DELETE /tools/{name}``: 409 naming the graphs that use it; else delete the function and its records.

    The tool is marked as being deleted before its users are read, so a graph created meanwhile is either seen
    here or refused (``functions.store.tools``)."""
    current = services.tools.get(name)
    services.tools.start_deleting(name)
    try:
        using, pending = users(services, name)
        if using or pending:
            said = [f"used by graphs {', '.join(using)}"] if using else []
            if pending:
                said.append(f"about to be used by graphs being created or updated now: {', '.join(pending)}")
            conflict = ConflictError(f"tool {name!r} is {'; '.join(said)}; delete or update them first")
            conflict.details = [  # type: ignore[attr-defined]
                {"loc": "name", "message": "used by graphs", "graphs": [*using, *pending]}
            ]
            raise conflict
        try:
            services.lambda_.delete_function(FunctionName=current.function_name)
        except ClientError as exc:
            if exc.response["Error"].get("Code") != "ResourceNotFoundException":
                raise _lambda_error("DeleteFunction", exc) from exc
    except BaseException:
        with contextlib.suppress(Exception):  # else the mark lapses by itself; a retry may start again at once
            services.tools.stop_deleting(name)
        raise
    services.tools.delete(name)


def describe(version: ToolVersion, versions: list[ToolVersion] | None = None) -> dict[str, Any]:
    """What ``GET /tools`` shows of a registered tool."""
    return {
        "name": version.name,
        "kind": "registered",
        "description": version.description,
        "params_schema": version.params_schema,
        "output_schema": None,
        "version": version.version,
        "timeout_seconds": version.timeout_seconds,
        "function_name": version.function_name,
        "versions": [
            {"version": v.version, "function_version": v.function_version, "created_at": v.created_at}
            for v in (versions if versions is not None else [version])
        ],
    }


class Catalog:
    """The validation's :class:`~statemachine.validation.ToolCatalog`: built-in tools plus the registered ones
    (their latest versions, checked against their JSON Schemas)."""

    def __init__(self, registered: list[ToolVersion]) -> None:
        from functions.executor.tools import registry

        self._builtin = registry
        self.registered = {v.name: v for v in registered}

    def names(self) -> list[str]:
        return sorted({*self._builtin.names(), *self.registered})

    def params_model(self, name: str) -> Any:
        return None if name in self.registered else self._builtin.params_model(name)

    def params_schema(self, name: str) -> dict[str, Any] | None:
        found = self.registered.get(name)
        return found.params_schema if found else None

    def lambda_problem(self, target: str) -> str | None:
        """A user's ``lambda:`` node may not name the stack's functions, registered tools' ones included."""
        return self._builtin.lambda_problem(target)


class CompiledCatalog:
    """The catalog for the spec as compiled, where registered tools' nodes call their function versions:
    the built-in registry, allowing exactly those versions as ``lambda:`` targets."""

    def __init__(self, allowed: set[str]) -> None:
        from functions.executor.tools import registry

        self._builtin = registry
        self.allowed = allowed

    def names(self) -> list[str]:
        return list(self._builtin.names())

    def params_model(self, name: str) -> Any:
        return self._builtin.params_model(name)

    def lambda_problem(self, target: str) -> str | None:
        return None if target in self.allowed else self._builtin.lambda_problem(target)
