"""Names and console links of the stack's resources, derived the same way everywhere (a leaf module)."""

from __future__ import annotations


def state_machine_name(prefix: str, graph_id: str, version: int) -> str:
    """The state machine of a graph version: ``<prefix>-<graph_id>`` for version 1, ``-v<n>`` after it.

    The API creates it under this name and the executor reads a run's graph back from it (``executor.binding``).
    """
    return f"{prefix}-{graph_id}" if version == 1 else f"{prefix}-{graph_id}-v{version}"


def console_url_for_state_machine(arn: str, region: str) -> str:
    """The Step Functions console page of a state machine."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/statemachines/view/{arn}"


def console_url_for_execution(arn: str, region: str) -> str:
    """The Step Functions console page of an execution."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}"
