"""Print the bad-input figures at the end of the session: the validator fuzz and the API's schemathesis run.

A module fixture's teardown output is captured by pytest unless ``-s`` is given, so the counts are written
from ``pytest_terminal_summary`` instead, where they always reach the terminal (and CI's log).
"""

from __future__ import annotations

import sys
from typing import Any

from tests.unit.fuzz.specs import SEEN


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines: list[str] = []
    if SEEN["cases"]:
        lines.append(
            f"validator fuzz: {SEEN['cases']} generated specs, {SEEN['accepted']} accepted and compiled, "
            f"{SEEN['rejected']} rejected with SpecError, 0 other outcomes"
        )
    if SEEN.get("runs"):
        lines.append(
            f"validator fuzz: {SEEN['runs']} accepted specs created and run to their end in the local cloud "
            f"({SEEN['runs_succeeded']} SUCCEEDED, the others FAILED with a node's own error)"
        )
    for name, module in list(sys.modules.items()):
        cases = getattr(module, "CASES", None)
        if name.endswith("test_fuzz_openapi") and isinstance(cases, dict) and cases.get("count"):
            statuses = dict(sorted(cases.get("by_status", {}).items()))
            server_errors = sum(n for status, n in statuses.items() if int(status) >= 500)
            lines.append(
                f"schemathesis: {cases['count']} generated cases over /openapi.json, "
                f"{server_errors} answered 5xx; statuses: {statuses}"
            )
    if lines:
        terminalreporter.section("bad-input figures")
        for line in lines:
            terminalreporter.write_line(line)
