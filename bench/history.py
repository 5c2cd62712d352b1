"""The strict local cloud's history cap at AWS's scale: a loop that runs into 25,000 events fails there.

``tests/functional/test_strict_cloud.py`` checks the rule with a lower cap; this runs the real one (about 6,250
rounds of a Pass and a Choice through moto's interpreter) and prints how long reaching it takes.
"""

from __future__ import annotations

import json
import time

import boto3

from bench.common import Figure, session

SECTION = "strict"
LOOP = {
    "StartAt": "Inc",
    "States": {
        "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "More"},
        "More": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThan": 1_000_000, "Next": "Inc"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def figures(quick: bool = False) -> list[Figure]:
    from local.strict import MAX_HISTORY_EVENTS

    if quick:
        return []
    with session() as runner:
        sfn = boto3.client("stepfunctions", region_name=runner.cloud.region)
        machine = sfn.create_state_machine(
            name="stepgraph-g_historycap", definition=json.dumps(LOOP), roleArn=runner.cloud.states_role_arn
        )["stateMachineArn"]
        started = time.perf_counter()
        arn = sfn.start_execution(stateMachineArn=machine, input='{"i": 0}')["executionArn"]
        described = runner.wait_execution(arn, timeout=900)
        seconds = time.perf_counter() - started
        events = 0
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        for page in pages:
            events += len(page["events"])
    how = f"a Pass/Choice loop bounded far beyond the cap; ended {described['status']} ({described.get('error')})"
    return [
        Figure(
            SECTION, f"execution run into the {MAX_HISTORY_EVENTS:,}-event history cap", round(seconds, 1), "s", how
        ),
        Figure(
            SECTION,
            "its history events",
            events,
            "events",
            f"AWS's quota for a STANDARD execution: {MAX_HISTORY_EVENTS:,}",
        ),
    ]
