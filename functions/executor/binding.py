"""Which run an executor request may act for: the one the invoking execution runs, read from its ARN.

The API names each execution after its run id and starts it on the state machine of the run's graph
version (``<prefix>-<graph_id>`` for version 1, ``<prefix>-<graph_id>-v<n>`` after). Every compiled Task
passes ``execution.$: $$.Execution.Id``, so a request whose document names another run (a crafted payload)
is refused without reading the store.

A resumed run (``POST /runs/{id}/resume``) runs again as a new execution named ``<run_id>-r<n>``, whose
document says which resume it is (``doc.run.resumes = n``): that name is accepted for exactly that ``n``.
"""

from __future__ import annotations

from typing import Any

from functions.names import state_machine_name

EXECUTION_KINDS = ("execution", "express")
RESUME_MARK = "-r"


def execution_name(run_id: str, resumes: int = 0) -> str:
    """The execution a run's ``resumes``-th resume runs as: the run id, then ``<run_id>-r<n>``."""
    return run_id if resumes == 0 else f"{run_id}{RESUME_MARK}{resumes}"


def run_of_execution(name: str) -> tuple[str, int]:
    """``(run_id, resumes)`` an execution name stands for (``execution_name`` read back)."""
    run_id, mark, number = name.rpartition(RESUME_MARK)
    if mark and run_id.startswith("r_") and number.isdigit() and not number.startswith("0"):
        return run_id, int(number)
    return name, 0


def resumes_of(run: Any) -> int | None:
    """The resume number a document's ``run`` carries (0 when absent), or None when it is not a count."""
    value = run.get("resumes", 0) if isinstance(run, dict) else 0
    return value if type(value) is int and value >= 0 else None


def execution_problem(execution: str | None, run: Any, prefix: str) -> str | None:
    """Why the execution ``execution`` (``$$.Execution.Id``) may not act for ``run`` (``doc.run``), or None.

    A distributed Map's child execution (``<machine>/<map run label>:<uuid>``) has its own name: for it the
    state machine must match; the run id is the parent's, carried in the document the Map passed down.
    """
    if not isinstance(run, dict):
        return "the document has no run"
    run_id, graph_id, version = run.get("run_id"), run.get("graph_id"), run.get("version")
    if not isinstance(run_id, str) or not isinstance(graph_id, str) or type(version) is not int:
        return "the document's run has no run_id, graph_id and version"
    resumes = resumes_of(run)
    if resumes is None:
        return "the document's run has a resumes that is not a count"
    if not execution:
        return "the request does not name the execution that sent it"
    parts = execution.split(":")
    if len(parts) < 8 or parts[0] != "arn" or parts[2] != "states" or parts[5] not in EXECUTION_KINDS:
        return f"{execution!r} is not a Step Functions execution ARN"
    machine, name = parts[6], parts[7]
    machine, slash, _label = machine.partition("/")
    expected = state_machine_name(prefix, graph_id, version)
    if machine != expected:
        return f"execution {execution} runs state machine {machine}, not {expected} of run {run_id}"
    if not slash and name != execution_name(run_id, resumes):
        return f"execution {execution} is not run {run_id}" + (f" resumed {resumes} times" if resumes else "")
    return None
