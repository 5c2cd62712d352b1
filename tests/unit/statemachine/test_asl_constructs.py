"""Exact ASL for each construct of the graph language (Task payloads reduced to node and mode)."""

from __future__ import annotations

import json

from asl_shape import END, SERVICE_RETRY, WRAP, compiled, echo, join, nxt, states, task

from statemachine.protocol import NodeContext

M2 = "States.JsonMerge($[0].d.results, $[1].d.results, false)"


def test_diamond_fans_out_into_a_parallel_and_joins_the_branch_documents() -> None:
    # GIVEN a -> (b, c) -> d
    spec = {
        "nodes": [echo("a"), echo("b"), echo("c"), echo("d")],
        "edges": [
            {"from": "a", "to": "b"},
            {"from": "a", "to": "c"},
            {"from": "b", "to": "d"},
            {"from": "c", "to": "d"},
        ],
    }
    # THEN b and c are branches of one Parallel whose ResultSelector merges their results
    assert states(spec) == {
        "a": task("a", **nxt("b+c")),
        "b+c": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "b", "States": {"b": task("b", **WRAP)}},
                {"StartAt": "c", "States": {"c": task("c", **WRAP)}},
            ],
            "ResultSelector": join(M2),
            "Next": "d",
        },
        "d": task("d", **END),
    }


def test_branches_at_different_depths_do_not_wait_for_each_other() -> None:
    # GIVEN a -> b -> c -> e and a -> d -> e: the short branch is not padded to the long one's levels
    spec = {
        "nodes": [echo("a"), echo("b"), echo("c"), echo("d"), echo("e")],
        "edges": [
            {"from": "a", "to": "b"},
            {"from": "b", "to": "c"},
            {"from": "c", "to": "e"},
            {"from": "a", "to": "d"},
            {"from": "d", "to": "e"},
        ],
    }
    par = states(spec)["b+d"]
    assert par["Branches"] == [
        {"StartAt": "b", "States": {"b": task("b", **nxt("c")), "c": task("c", **WRAP)}},
        {"StartAt": "d", "States": {"d": task("d", **WRAP)}},
    ]


def test_condition_becomes_a_guarded_choice_and_skips_propagate() -> None:
    # GIVEN a -> b when a.code == 200, and b -> c
    spec = {
        "nodes": [echo("a"), echo("b"), echo("c")],
        "edges": [{"from": "a", "to": "b", "when": "a.code == 200"}, {"from": "b", "to": "c"}],
    }
    # THEN b.when tests presence, type and value; c runs exactly when b ran, so b.when skips both
    assert states(spec) == {
        "a": task("a", **nxt("b.when")),
        "b.when": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.results.a.code", "IsPresent": True},
                        {"Variable": "$.results.a.code", "IsNumeric": True},
                        {"Variable": "$.results.a.code", "NumericEquals": 200},
                    ],
                    "Next": "b",
                }
            ],
            "Default": "b.end",
        },
        "b": task("b", **nxt("c")),
        "c": task("c", **END),
        "b.end": {"Type": "Succeed"},
    }


def test_a_node_fed_by_a_skippable_node_elsewhere_checks_its_presence() -> None:
    # GIVEN a -> b (when), a -> c, and b -> d, c -> d: d runs when b or c ran
    spec = {
        "nodes": [echo("a"), echo("b"), echo("c"), echo("d")],
        "edges": [
            {"from": "a", "to": "b", "when": "a.ok == true"},
            {"from": "a", "to": "c"},
            {"from": "b", "to": "d"},
            {"from": "c", "to": "d"},
        ],
    }
    # THEN d has no gate (c always runs), and b's skip ends its branch
    top = states(spec)
    assert top["d"] == task("d", **END)
    branch_b = top["b+c"]["Branches"][0]
    assert branch_b["States"]["b.when"]["Default"] == "b.end"
    assert branch_b["States"]["b.end"] == {
        "Type": "Pass",
        "Parameters": {"d": {"results.$": "$.results", "loops.$": "$.loops", "sd.$": "$.sd"}},
        "End": True,
    }


def test_bounded_loop_is_a_choice_back_to_the_head() -> None:
    # GIVEN start -> body -> check, check -> body while state.n < 3 (at most 5), check -> done
    spec = {
        "nodes": [echo("start"), echo("body"), echo("check", update_state=True), echo("done")],
        "edges": [
            {"from": "start", "to": "body"},
            {"from": "body", "to": "check"},
            {"from": "check", "to": "body", "when": "state.n < 3", "max_iterations": 5},
            {"from": "check", "to": "done"},
        ],
    }
    definition = compiled(spec)
    assert states(spec) == {
        "start": task("start", **nxt("body")),
        "body": task("body", **nxt("check")),
        "check": task("check", **nxt("check.loop")),
        "check.loop": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.state.n", "IsPresent": True},
                        {"Variable": "$.state.n", "IsNumeric": True},
                        {"Variable": "$.state.n", "NumericLessThan": 3},
                        {"Variable": "$.loops['body@loop']", "IsPresent": True},
                        {"Variable": "$.loops['body@loop']", "IsNumeric": True},
                        {"Variable": "$.loops['body@loop']", "NumericLessThan": 5},
                    ],
                    "Next": "body",
                }
            ],
            "Default": "done",
        },
        "done": task("done", **END),
    }
    # AND the loop's nodes count iterations; the head clears the body's results for each new iteration
    body = NodeContext.from_json(definition["States"]["body"]["Parameters"]["Payload"]["ctx"])
    check = NodeContext.from_json(definition["States"]["check"]["Parameters"]["Payload"]["ctx"])
    assert (body.in_loop, body.clears, body.loop_counter) == (True, ["check"], "body@loop")
    assert (check.in_loop, check.clears, check.loop_counter) == (True, [], None)


def test_foreach_plans_batches_then_a_distributed_map_of_them_then_a_collect_task() -> None:
    spec = {"nodes": [echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"}, max_concurrency=3)]}
    assert states(spec) == {
        "each.plan": task("each", "plan", timeout=900, **nxt("each")),
        "each": {
            "Type": "Map",
            "ItemsPath": "$.starts",
            "ItemSelector": {"doc.$": "$.doc", "start.$": "$$.Map.Item.Value", "size.$": "$.size"},
            "MaxConcurrency": 3,
            "ToleratedFailurePercentage": 100.0,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "each.item",
                "States": {"each.item": task("each", "batch", timeout=13 * 61 + 30, **END)},
            },
            "ResultPath": None,
            "OutputPath": "$.doc",
            "Next": "each.collect",
        },
        "each.collect": task("each", "collect", timeout=900, **END),
    }
    definition = compiled(spec)
    payload = definition["States"]["each"]["ItemProcessor"]["States"]["each.item"]["Parameters"]["Payload"]
    assert {k: payload[k] for k in ("doc.$", "start.$", "size.$")} == {
        "doc.$": "$.doc",
        "start.$": "$.start",
        "size.$": "$.size",
    }
    # AND a batch holds as many items as their worst case (60 s timeout + 1 s grace each) fits in 840 s
    ctx = NodeContext.from_json(payload["ctx"])
    assert (ctx.batch_max, ctx.item_retries) == (13, "executor")


def test_foreach_items_too_slow_to_batch_are_retried_by_step_functions_one_per_child() -> None:
    # GIVEN items whose worst case (3 attempts of 300 s) does not fit one executor invocation
    retry = {"max_attempts": 2, "interval_seconds": 5}
    spec = {
        "nodes": [
            echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"}, timeout_seconds=300, retry=retry)
        ]
    }
    child = states(spec, keep_retry=True)["each"]["ItemProcessor"]["States"]["each.item"]
    # THEN each child runs one item per attempt, with the node's timeout and retry policy on the Task
    assert child["TimeoutSeconds"] == 300
    assert child["Retry"][1]["ErrorEquals"] == ["States.ALL"]
    assert child["Retry"][1]["MaxAttempts"] == 2
    ctx = NodeContext.from_json(compiled(spec)["States"]["each.plan"]["Parameters"]["Payload"]["ctx"])
    assert (ctx.batch_max, ctx.item_retries) == (1, "states")


def test_an_express_foreach_runs_its_batches_in_an_inline_map_whose_lost_batches_end_quietly() -> None:
    # GIVEN an EXPRESS graph (Step Functions has no distributed Map there)
    spec = {
        "nodes": [echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"})],
        "options": {"workflow_type": "EXPRESS"},
    }
    each = states(spec)["each"]
    # THEN the batches run inline, and a batch that failed for good ends as a Pass (collect reports it)
    assert each["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert "ToleratedFailurePercentage" not in each
    children = each["ItemProcessor"]["States"]
    assert children["each.item"]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "each.lost"}]
    assert children["each.lost"] == {"Type": "Pass", "Result": {"ok": False}, "End": True}


def test_foreach_concurrency_never_exceeds_the_graph_cap() -> None:
    spec = {
        "nodes": [echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"})],
        "options": {"max_concurrency": 4},
    }
    assert states(spec)["each"]["MaxConcurrency"] == 4


def test_retry_timeout_and_optional_catch() -> None:
    # GIVEN an optional node with its own retry policy and timeout, then y
    spec = {
        "nodes": [
            echo(
                "x",
                retry={
                    "max_attempts": 2,
                    "interval_seconds": 2,
                    "backoff_rate": 1.5,
                    "max_delay_seconds": 10,
                    "jitter": "FULL",
                },
                timeout_seconds=5,
                optional=True,
            ),
            echo("y"),
        ],
        "edges": [{"from": "x", "to": "y"}],
    }
    # THEN Retry = service-error retry + the node's policy; a failure goes to x.failed, which continues to y
    assert states(spec, keep_retry=True) == {
        "x": task(
            "x",
            timeout=5,
            Retry=[
                SERVICE_RETRY,
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 2,
                    "MaxAttempts": 2,
                    "BackoffRate": 1.5,
                    "MaxDelaySeconds": 10,
                    "JitterStrategy": "FULL",
                },
            ],
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "x.failed"}],
            **nxt("y"),
        ),
        "y": task("y", Retry=[SERVICE_RETRY], **END),
        "x.failed": task("x", "failed", Retry=[SERVICE_RETRY], **nxt("y")),
    }


def test_default_retry_and_timeout_come_from_options() -> None:
    spec = {
        "nodes": [echo("x", retry={"interval_seconds": 3})],
        "options": {"default_retry": {"max_attempts": 4, "backoff_rate": 3.0}, "default_timeout_seconds": 7},
    }
    x = states(spec, keep_retry=True)["x"]
    assert x["TimeoutSeconds"] == 7
    assert x["Retry"][1] == {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3, "MaxAttempts": 4, "BackoffRate": 3.0}


def test_max_concurrency_packs_branches_into_lanes() -> None:
    # GIVEN four independent nodes and max_concurrency 2
    spec = {"nodes": [echo("a"), echo("b"), echo("c"), echo("d")], "options": {"max_concurrency": 2}}
    # THEN one Parallel of two lanes, each running two nodes one after the other
    assert states(spec) == {
        "a+c": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "a", "States": {"a": task("a", **nxt("b")), "b": task("b", **WRAP)}},
                {"StartAt": "c", "States": {"c": task("c", **nxt("d")), "d": task("d", **WRAP)}},
            ],
            "ResultSelector": join(M2),
            "End": True,
        }
    }


def test_wide_fan_out_nests_parallels_to_keep_joins_within_ten_intrinsics() -> None:
    spec = {"nodes": [echo(f"n{i}") for i in range(25)], "options": {"max_concurrency": 100}}
    top = states(spec)
    (par,) = top.values()
    assert len(par["Branches"]) <= 10
    text = json.dumps(compiled(spec))
    assert all(f'"n{i}"' in text for i in range(25))
    for branch in par["Branches"]:
        for inner in branch["States"].values():
            if inner["Type"] == "Parallel":
                assert set(inner["ResultSelector"]) == {"d"}
                assert inner["ResultSelector"]["d"]["results.$"].count("States.JsonMerge") <= 9


def test_parallel_state_updates_merge_through_the_state_delta() -> None:
    spec = {
        "nodes": [echo("l", update_state=True), echo("r", update_state=True), echo("j")],
        "edges": [{"from": "l", "to": "j"}, {"from": "r", "to": "j"}],
    }
    sd = "States.JsonMerge($[0].d.sd, $[1].d.sd, false)"
    assert states(spec)["l+r"]["ResultSelector"] == join(M2, sd=sd)


def test_hyphenated_ids_use_bracket_notation_in_paths() -> None:
    spec = {
        "nodes": [echo("my-node"), echo("next")],
        "edges": [{"from": "my-node", "to": "next", "when": "my-node.ok == true"}],
    }
    rule = states(spec)["next.when"]["Choices"][0]
    assert rule["And"][0] == {"Variable": "$.results['my-node'].ok", "IsPresent": True}


def test_non_series_parallel_graph_keeps_every_dependency() -> None:
    # GIVEN the "N" shape a -> c, a -> d, b -> d (no exact series-parallel form)
    spec = {
        "nodes": [echo("a"), echo("b"), echo("c"), echo("d")],
        "edges": [{"from": "a", "to": "c"}, {"from": "a", "to": "d"}, {"from": "b", "to": "d"}],
    }
    definition = compiled(spec)
    # THEN in the flattened execution order every node comes after all of its parents
    order = _order(definition)
    for parent, child in (("a", "c"), ("a", "d"), ("b", "d")):
        assert order[parent] < order[child]


def _order(definition: dict[str, object]) -> dict[str, int]:
    """Depth at which each Task starts when every state takes one step (Parallels wait for all branches)."""
    seen: dict[str, int] = {}

    def walk(scope: dict, start: str, t: int) -> int:  # type: ignore[type-arg]
        name = start
        while True:
            state = scope["States"][name]
            if state["Type"] == "Task":
                seen.setdefault(state["Parameters"]["Payload"]["node"], t)
                t += 1
            elif state["Type"] == "Parallel":
                t = max(walk(b, b["StartAt"], t) for b in state["Branches"])
            if "Next" not in state:
                return t
            name = state["Next"]

    walk(definition, str(definition["StartAt"]), 0)  # type: ignore[arg-type]
    return seen


def test_document_budget_shrinks_with_the_widest_join() -> None:
    # GIVEN a chain and a fan-out of eight: a Parallel result holds one document per branch
    chain = compiled({"nodes": [echo("a"), echo("b")], "edges": [{"from": "a", "to": "b"}]})
    fan = compiled({"nodes": [echo(f"n{i}") for i in range(8)]})

    def budget(definition: dict[str, object], path: list[str]) -> int | None:
        state: object = definition
        for key in path:
            state = state[key]  # type: ignore[index]
        return NodeContext.from_json(state["Parameters"]["Payload"]["ctx"]).doc_budget  # type: ignore[index]

    # THEN a chain's nodes may return 96 KiB documents, the fan-out's eight branches share the 256 KiB limit
    assert budget(chain, ["States", "a"]) == 96 * 1024
    (par,) = fan["States"].values()  # type: ignore[attr-defined]
    assert budget(par["Branches"][0], ["States", "n0"]) == (256 - 16) * 1024 // 8


def test_lambda_node_invokes_the_users_function_directly_then_records() -> None:
    # GIVEN a node running a user's Lambda with a whole and an interpolated reference
    spec = {
        "nodes": [
            echo("a"),
            {"id": "mine", "tool": "lambda:my-fn", "params": {"x": "{{ a.v }}", "say": "it's {{ a.v }}", "n": 3}},
        ],
        "edges": [{"from": "a", "to": "mine"}],
    }
    definition = compiled(spec)
    mine = definition["States"]["mine"]
    # THEN the Task calls my-fn with params resolved by JSONPath and keeps its output under results.mine
    assert mine["Parameters"] == {
        "FunctionName": "my-fn",
        "Payload": {"x.$": "$.results.a.v", "say.$": "States.Format('it\\'s {}', $.results.a.v)", "n": 3},
    }
    assert mine["ResultSelector"] == {
        "Payload.$": "$.Payload",
        "started.$": "$$.State.EnteredTime",
        "retry_count.$": "$$.State.RetryCount",
    }
    assert (mine["ResultPath"], mine["Next"]) == ("$.results.mine", "mine.record")
    assert mine["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "mine.failed"}]
    # AND a resumed run's document that says it succeeded before skips straight to its record (no new call)
    assert definition["States"]["mine.resumed"] == {
        "Type": "Choice",
        "Choices": [{"Variable": "$.run.done.mine", "IsPresent": True, "Next": "mine.record"}],
        "Default": "mine.check",
    }
    # AND a failure is recorded, then fails the run with the function's own error
    shaped = states(spec)
    assert shaped["mine.record"] == task("mine", "record", **END)
    assert shaped["mine.failed"] == task("mine", "failed", ResultPath=None, Next="mine.error")
    assert shaped["mine.fail"] == {"Type": "Fail", "ErrorPath": "$.failure.Error", "CausePath": "$.failure.Cause"}
    # AND a reserved States.* name (a Fail state may not use one) ends the run under a stepgraph name
    assert shaped["mine.error"]["Default"] == "mine.fail"
    assert [(c.get("StringEquals") or c["StringMatches"], c["Next"]) for c in shaped["mine.error"]["Choices"]] == [
        ("States.Timeout", "mine.fail-timeout"),
        ("States.*", "mine.fail-reserved"),
    ]
    assert shaped["mine.fail-timeout"]["Error"] == "stepgraph.Timeout"
    assert shaped["mine.fail-reserved"]["Error"] == "stepgraph.NodeFailed"
    # AND the paths it reads stay inline in a's output
    a_ctx = NodeContext.from_json(definition["States"]["a"]["Parameters"]["Payload"]["ctx"])
    assert a_ctx.inline_paths == ["v"]


def test_a_foreach_beside_other_branches_shares_the_cap_instead_of_serialising_them() -> None:
    # GIVEN a foreach and two plain nodes side by side, max_concurrency 6
    spec = {
        "nodes": [echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"}), echo("a"), echo("b")],
        "options": {"max_concurrency": 6},
    }
    par = states(spec)["each+a+b"]
    # THEN the three run side by side and the Map takes what the other two leave: 4 items at once
    assert [b["StartAt"] for b in par["Branches"]] == ["each.plan", "a", "b"]
    assert par["Branches"][0]["States"]["each"]["MaxConcurrency"] == 4


def test_constant_false_conditions_drop_what_can_never_run() -> None:
    # GIVEN an edge that can never hold, in front of a chain and in front of a loop
    chain = states(
        {
            "nodes": [echo("a"), echo("b"), echo("c")],
            "edges": [{"from": "a", "to": "b", "when": "false"}, {"from": "b", "to": "c"}],
        }
    )
    loop = states(
        {
            "nodes": [echo("a"), echo("h"), echo("t")],
            "edges": [
                {"from": "a", "to": "h", "when": "1 == 2"},
                {"from": "h", "to": "t"},
                {"from": "t", "to": "h", "max_iterations": 2},
            ],
        }
    )
    # THEN neither the nodes behind it nor their Choices are compiled: the run ends after a
    assert chain == {"a": task("a", **nxt("c.end")), "c.end": {"Type": "Succeed"}}
    assert loop == {"a": task("a", **nxt("h.end")), "h.end": {"Type": "Succeed"}}


def test_an_inline_map_never_asks_for_more_than_aws_runs_at_once() -> None:
    # GIVEN a foreach asking for 100 at once in a graph allowing 500
    spec = {
        "nodes": [echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"}, max_concurrency=100)],
        "options": {"max_concurrency": 500},
    }
    # THEN its inline Map runs at most 40 (what AWS runs at once)
    assert compiled(spec)["States"]["each"]["MaxConcurrency"] == 40
