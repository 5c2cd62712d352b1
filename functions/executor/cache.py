"""Cache keys of nodes with ``cache``: which earlier outputs a node may reuse.

Two runs share an output when they call the same tool, at the same version, with the same resolved params.
The key is the SHA-256 of the canonical JSON (sorted keys, no blanks, UTF-8) of ``[tool, version, params]``.
A built-in tool's version is a digest of its source (its module, the package's private helper modules and
``base.py``): a deploy that changes a tool's code never serves outputs of the old code, and nothing needs to
be bumped by hand. A ``lambda:`` node (a registered tool compiles to one) names a published function
version in its tool string (``lambda:<ARN>:<version>``), so the string is the version.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.executor.tools.base import Tool

KEY_FORMAT = "1"
"""Part of every key: changing how keys are made (or what a cached output means) bumps it."""


def canonical(value: Any) -> str:
    """The canonical JSON text of ``value``: sorted keys, no blanks, non-ASCII kept, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(tool: str, version: str, params: Any) -> str:
    """The key of an output of ``tool`` at ``version`` for ``params`` (resolved): 64 hex digits."""
    text = canonical([KEY_FORMAT, tool, version, params])
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def source_version(module: str) -> str:
    """A digest of the source a built-in tool module runs: the module, its package's ``_*.py`` helpers, ``base.py``."""
    spec = importlib.util.find_spec(module)
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    if origin is None or not origin.is_file():
        raise LookupError(f"no source for {module}")
    files = [origin, *sorted(origin.parent.glob("_*.py")), origin.parent / "base.py"]
    digest = hashlib.sha256()
    for path in dict.fromkeys(files):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def tool_version(tool: Tool) -> str:
    """The version of a built-in tool as cache keys name it."""
    return source_version(tool.module)


def node_key(tool_name: str, params: Any, tool: Tool | None) -> str:
    """The cache key of a node's call: a built-in ``tool`` keys on its params as it parses them (defaults
    filled in, so leaving a default out or spelling it out is the same call); a ``lambda:`` node on its params
    as resolved. Raises the tool's ``InvalidParams`` when they do not parse (the node then runs and fails)."""
    if tool is None:
        return cache_key(tool_name, "", params)
    parsed = tool.parse_params(params).model_dump(mode="json", by_alias=True)
    return cache_key(tool_name, tool_version(tool), parsed)
