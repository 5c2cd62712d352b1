"""The handler of a registered tool's own Lambda function (shipped in its zip next to the user's ``tool.py``).

It scrubs the environment, checks the params against the tool's JSON Schema (a core subset: the API
checked the full schema when the tool and the graphs were created), bounds memory and time, and calls
``run(params)``. An exception the tool raises propagates, so Lambda reports its class name as
``errorType`` and Step Functions fails the node with it. Only the standard library: it runs on the bare
Lambda runtime and in the local cloud's sandboxed process alike.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import sys
import threading
from pathlib import Path
from typing import Any

CONFIG_FILE = "stepgraph_tool.json"
TOOL_FILE = "tool.py"
MAX_ERROR_CHARS = 4096
"""A tool's error message is cut to this many characters: Step Functions carries it as the node's cause, and a
long one (a response body put in an exception) made the failure too big to be caught, or recorded."""
KEEP_ENV = frozenset({"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "PYTHONIOENCODING"})
"""Environment variables a tool may see: nothing of the stack's, no credentials, no runtime endpoints."""


class InvalidParams(Exception):
    """The params the node resolved do not match the tool's schema."""


class ToolTimeout(Exception):
    """The tool ran past its ``timeout_seconds``."""


class MemoryLimitExceeded(Exception):
    """The tool allocated past its memory limit."""


class ToolLoadError(Exception):
    """The tool's source does not define ``run``."""


_HERE = Path(__file__).resolve().parent
_tool: Any = None


def _config() -> dict[str, Any]:
    return dict(json.loads((_HERE / CONFIG_FILE).read_text(encoding="utf-8")))


def scrub_environment() -> None:
    """Drop every variable but a few harmless ones (the runtime's credentials included): the tool sees no secret."""
    for key in list(os.environ):
        if key not in KEEP_ENV:
            del os.environ[key]


def _load_tool() -> Any:
    """Import ``tool.py`` (once); an import error inside it propagates as itself (``ModuleNotFoundError``...)."""
    global _tool
    if _tool is None:
        spec = importlib.util.spec_from_file_location("tool", _HERE / TOOL_FILE)
        if spec is None or spec.loader is None:
            raise ToolLoadError("tool.py is missing from the function's code")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not callable(getattr(module, "run", None)):
            raise ToolLoadError("the tool's source defines no run(params) function")
        _tool = module
    return _tool


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_problem(value: Any, schema: Any, where: str = "(root)") -> str | None:
    """The first way ``value`` breaks ``schema`` (type, enum, const, required, properties, additionalProperties,
    items, min/max, length bounds), or None."""
    if not isinstance(schema, dict):
        return None
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        ok = any(
            isinstance(value, _TYPES.get(k, ())) and not (k in ("integer", "number") and isinstance(value, bool))
            for k in names
        )
        if not ok and "integer" in names and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            return f"{where}: {json.dumps(value)[:80]} is not of type {' or '.join(names)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: {json.dumps(value)[:80]} is not one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        return f"{where}: expected {json.dumps(schema['const'])}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{where}: {key!r} is a required property"
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                problem = schema_problem(item, props[key], f"{where}/{key}" if where != "(root)" else key)
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where}: additional property {key!r} is not allowed"
    if isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            problem = schema_problem(item, items, f"{where}/{i}" if where != "(root)" else str(i))
            if problem:
                return problem
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{where}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where}: more than {schema['maxItems']} items"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{where}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where}: longer than {schema['maxLength']} characters"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: {value} is less than the minimum of {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: {value} is more than the maximum of {schema['maximum']}"
    return None


def _address_space() -> int:
    """Bytes of address space the process uses now (0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def _on_alarm(signum: int, frame: Any) -> None:
    raise ToolTimeout("the tool ran past its timeout")


def call(params: Any, config: dict[str, Any], remaining_ms: int | None = None) -> Any:
    """Check ``params``, then ``run(params)`` within the tool's memory and time limits."""
    problem = schema_problem(params, config.get("params_schema") or {})
    if problem:
        raise InvalidParams(f"{config.get('name', 'tool')}: {problem}")
    timeout = float(config.get("timeout_seconds") or 30)
    if remaining_ms is not None:
        timeout = max(0.1, min(timeout, remaining_ms / 1000 - 0.5))
    memory_mb = int(config.get("memory_mb") or 128)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = _address_space() + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    timed = threading.current_thread() is threading.main_thread()
    module = _load_tool()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
        if timed:
            signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = module.run(params)
        except MemoryError:
            raise MemoryLimitExceeded(
                f"{config.get('name', 'tool')} allocated past its memory limit of {memory_mb} MiB"
            ) from None
        except ToolTimeout:
            raise ToolTimeout(f"{config.get('name', 'tool')} ran past its timeout of {timeout:g} s") from None
        except Exception as exc:
            message = str(exc)
            if len(message) <= MAX_ERROR_CHARS:
                raise
            named = type(type(exc).__name__, (Exception,), {"__module__": type(exc).__module__})
            cut = f"{message[:MAX_ERROR_CHARS]}... (cut: {len(message)} characters in all)"
            raise named(cut) from None
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    json.dumps(result)  # a result that is not JSON fails here, in the tool's name, not in the runtime
    return result


def handler(event: Any, context: Any) -> Any:
    """Lambda's entry point: the event is the node's resolved params."""
    scrub_environment()
    remaining = context.get_remaining_time_in_millis() if context is not None else None
    return call(event, _config(), remaining)


if __name__ == "__main__":  # pragma: no cover - the local cloud's sandbox runs the handler this way
    sys.exit("run through local.toolbox")
