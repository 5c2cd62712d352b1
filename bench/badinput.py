"""Bad-input figures: how many generated cases the two fuzz suites ran, and how many went wrong.

Runs the same tests ``make test`` runs (schemathesis over /openapi.json against the API handler; the graph
validator under hypothesis-generated specs) in a pytest subprocess and reads the counts they print.
"""

from __future__ import annotations

import re
import subprocess
import sys

from bench.common import ROOT, Figure

SECTION = "bad input"
SUITES = ["tests/unit/api/test_fuzz_openapi.py", "tests/unit/fuzz"]
SCHEMATHESIS = re.compile(
    r"schemathesis: (\d+) generated cases over /openapi\.json, (\d+) answered 5xx; "
    r"statuses: (.*)"
)
VALIDATOR = re.compile(r"validator fuzz: (\d+) generated specs, (\d+) accepted and compiled, (\d+) rejected")


def figures(quick: bool = False) -> list[Figure]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    out = done.stdout
    verdict = "tests passed" if done.returncode == 0 else f"pytest exit {done.returncode}"
    rows: list[Figure] = []
    if match := SCHEMATHESIS.search(out):
        cases, errors, statuses = match.groups()
        how = f"schemathesis over every /openapi.json operation against the API handler; {verdict}; {statuses}"
        rows.append(Figure(SECTION, "API requests generated", int(cases), "requests", how))
        rows.append(Figure(SECTION, "API requests answered 5xx", int(errors), "requests", how))
    if match := VALIDATOR.search(out):
        cases, accepted, rejected = (int(g) for g in match.groups())
        how = (
            f"hypothesis specs (nodes, edges, conditions, references, mistakes); {verdict}; "
            f"{accepted} accepted and compiled (structural check), {rejected} rejected with SpecError"
        )
        rows.append(Figure(SECTION, "graph specs generated for the validator", cases, "specs", how))
        rows.append(
            Figure(
                SECTION,
                "validator outcomes other than accept / SpecError",
                0 if done.returncode == 0 else "see pytest",
                "specs",
                how,
            )
        )
    if not rows:
        tail = (out or done.stderr).strip().splitlines()[-1:] or ["no output"]
        rows.append(Figure(SECTION, "fuzz suites", "no counts printed", "-", tail[0][:200]))
    return rows
