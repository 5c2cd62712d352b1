"""AWS's ASL language service (npm ``amazon-states-language-service``) from Python: one ``node`` call checks
many definitions. ``package.json`` pins it; ``make node_modules`` (run by ``make test``) installs it with
``npm ci``, and ``diagnostics`` runs that too if it has not been done."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "local" / "asl-validate.js"
PACKAGE = ROOT / "node_modules" / "amazon-states-language-service"


class AslServiceError(RuntimeError):
    """node or the language service could not run (not a diagnostic of a definition)."""


def ensure_installed() -> None:
    """Install the pinned language service (``npm ci``) unless it is there."""
    if PACKAGE.is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise AslServiceError("npm is not installed: the ASL language service needs node 18+ and npm")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise AslServiceError(f"npm ci failed: {done.stderr[-2000:]}")


def diagnostics(definitions: Mapping[str, dict[str, Any] | str]) -> dict[str, list[dict[str, Any]]]:
    """Every diagnostic (errors and warnings) AWS's language service reports, by definition name."""
    ensure_installed()
    node = shutil.which("node")
    if node is None:
        raise AslServiceError("node is not installed: the ASL language service needs node 18+")
    done = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(dict(definitions)),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise AslServiceError(f"the ASL language service failed: {done.stderr[-2000:]}")
    report: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return report
