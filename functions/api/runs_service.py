"""Run operations behind the routes: start (idempotently), read with reconciliation, cancel, resume, the view."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from functions import runs_sync
from functions.errors import (
    ConflictError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PayloadTooLargeError,
    UpstreamError,
)
from functions.executor.binding import execution_name
from functions.names import console_url_for_execution
from functions.store.offload import REF_KEY, is_ref
from functions.store.runs import Run, new_run_id
from functions.store.table import now_iso, parse_iso
from statemachine import jsonlimits
from statemachine.payload import initial_document, resumed_document
from statemachine.spec import GraphSpec
from statemachine.status import NODE_TERMINAL, RUN_RESUMABLE, RUN_TERMINAL, ExecutionStatus, NodeStatus, RunStatus

if TYPE_CHECKING:
    from functions.api.services import Services
    from functions.store.records import NodeRecord

MAX_EXECUTION_INPUT = 256 * 1024
OUTPUT_INLINE_MAX = 1024 * 1024
"""Largest offloaded output ``GET /runs/{id}`` (or an items page) reads back whole."""
RESPONSE_OUTPUT_BUDGET = 2 * 1024 * 1024
"""Offloaded bytes one response reads back in all: with the JSON escaping of a proxy response, well under
Lambda's 6 MB response limit (and API Gateway's 10 MB)."""
MAX_RUN_INPUT_BYTES = 128_000
"""A run's input, as compact JSON with non-ASCII characters escaped. The execution input holds it twice
(``input``, and ``state``, which starts as the input) within Step Functions' 256 KiB, as does the run's item
within DynamoDB's 400 KB."""
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_WAIT_SECONDS = 25
"""``?wait=`` is bounded so the answer comes before API Gateway's 29-second integration timeout."""
MAX_RESUMES = 20
"""How often one run can be resumed. Each resume keeps the execution before it in the run's history (its error
message cut to ``runs.EARLIER_ERROR_CHARS``), so a run item stays far inside DynamoDB's 400 KB and a page of
100 runs inside Lambda's 6 MB response."""
START_GRACE_SECONDS = 60
"""How long after a run's execution was to start it may still be starting: the request starting it records the
run first and calls StartExecution then, within the API function's 29 s. Past this, a recorded execution that
Step Functions does not know never started."""
LLM_TOOL = "llm.converse"


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives an execution called ``name`` of a standard state machine."""
    parts = state_machine_arn.split(":")
    return ":".join([*parts[:5], "execution", parts[6], name])


def check_run_input(run_input: dict[str, Any]) -> None:
    """A run's input within the limits every start applies (JSON limits, ``MAX_RUN_INPUT_BYTES``)."""
    jsonlimits.check(run_input, "input")
    size = len(json.dumps(run_input, separators=(",", ":")))
    if size > MAX_RUN_INPUT_BYTES:
        raise PayloadTooLargeError(
            f"the run input is {size} bytes as compact JSON, over the limit of {MAX_RUN_INPUT_BYTES} bytes "
            "(the execution input holds it twice, as input and as the starting state, within Step Functions' "
            "256 KiB); pass large data by reference (e.g. a URL) instead"
        )


def start_run(
    services: Services, graph_id: str, run_input: dict[str, Any], *, trigger: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record a run of the graph's latest version and start its execution (named by the run id); ``trigger``
    says what started it (the API when None)."""
    head = services.graphs.get(graph_id)
    version = services.graphs.version(graph_id, head.latest_version)
    spec = GraphSpec.model_validate(version.spec)
    check_run_input(run_input)
    run_id = new_run_id()
    document = initial_document(spec, {"run_id": run_id, "graph_id": graph_id, "version": version.version}, run_input)
    encoded = json.dumps(document, separators=(",", ":"))
    if len(encoded.encode()) > MAX_EXECUTION_INPUT:
        raise PayloadTooLargeError(
            f"the run's execution input would be {len(encoded.encode())} bytes, over Step Functions' "
            f"{MAX_EXECUTION_INPUT}-byte limit; pass large data by reference (e.g. a URL) instead"
        )
    execution_arn = execution_arn_for(version.state_machine_arn, run_id)
    run = Run(
        run_id=run_id,
        graph_id=graph_id,
        version=version.version,
        status=RunStatus.RUNNING,
        execution_arn=execution_arn,
        started_at=now_iso(),
        input=run_input,
        trigger=trigger or {"type": "api"},
    )
    services.runs.create(run)
    execution_arn = _start_execution(services, run_id, version.state_machine_arn, run_id, encoded, execution_arn)
    return {
        "run_id": run_id,
        "graph_id": graph_id,
        "version": version.version,
        "execution_arn": execution_arn,
        "status": RunStatus.RUNNING,
        "console_url": console_url_for_execution(execution_arn, services.settings.region),
        "trigger": run.trigger,
    }


def start_run_idempotently(
    services: Services,
    graph_id: str,
    run_input: dict[str, Any],
    key: str,
    lambda_context: Any = None,
    *,
    trigger: dict[str, Any] | None = None,
    key_prefix: str = "start_run",
) -> dict[str, Any]:
    """``start_run`` once per (graph, Idempotency-Key); a retry gets the first answer, another body a 422.
    ``key_prefix`` keeps other callers' keys (a schedule's fire times) apart from the API's.

    Powertools Idempotency is imported here, not at the top: only a start with an Idempotency-Key (and the
    schedule function, which imports it itself) needs it, so other requests' cold starts don't load it."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    persistence = DynamoDBPersistenceLayer(
        table_name=services.settings.table,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=f"IDEMPOTENCY#{graph_id}",
        expiry_attr="expires_at",
        boto3_client=services.dynamodb,
    )
    config = IdempotencyConfig(
        event_key_jmespath="[graph_id, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
    )
    if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
        config.register_lambda_context(lambda_context)

    @idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config, key_prefix=key_prefix
    )
    def once(request: dict[str, Any]) -> dict[str, Any]:
        return start_run(services, request["graph_id"], request["body"]["input"], trigger=trigger)

    try:
        return dict(once(request={"graph_id": graph_id, "key": key, "body": {"input": run_input}}))
    except IdempotencyValidationError as exc:
        raise IdempotencyKeyReusedError(
            "this Idempotency-Key was already used with a different request body; use a new key for a new run"
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise IdempotencyInProgressError(
            "a request with this Idempotency-Key is still being processed; retry shortly"
        ) from exc


def wait_for_end(services: Services, run_id: str, seconds: float) -> Run | None:
    """The run once it has ended, reading it (and reconciling with its execution) until ``seconds`` have
    passed; None if it is still running then. Reads back off from 50 ms to 500 ms."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        run = get_run(services, run_id)
        if run.status != RunStatus.RUNNING:
            return run
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.5)


def _start_execution(
    services: Services, run_id: str, state_machine_arn: str, name: str, encoded: str, execution_arn: str
) -> str:
    """StartExecution for the run's recorded execution; the ARN Step Functions gave (an EXPRESS execution's
    differs, and is recorded). A refused start fails the run and is a 502."""
    try:
        started = services.sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=encoded)
    except ClientError as exc:
        code = exc.response["Error"].get("Code", "")
        error = {"code": "StartExecutionFailed", "message": code}
        services.runs.finish(run_id, RunStatus.FAILED, error=error, execution_arn=execution_arn)
        if code in ("StateMachineDoesNotExist", "StateMachineDeleting"):
            raise NotFoundError(f"the graph was deleted while run {run_id} was being started") from exc
        raise UpstreamError(f"StartExecution failed: {code}") from exc
    if started.get("executionArn") and started["executionArn"] != execution_arn:  # e.g. an EXPRESS execution
        execution_arn = str(started["executionArn"])
        services.runs.set_execution_arn(run_id, execution_arn)
    return execution_arn


def get_run(services: Services, run_id: str, *, reconcile: bool = True) -> Run:
    """The run; a RUNNING one is first reconciled with its execution (DescribeExecution)."""
    run = services.runs.get(run_id)
    if reconcile and run.status == RunStatus.RUNNING and run.execution_arn:
        graph_id, version = run.graph_id, run.version

        def node_ids() -> list[str]:
            return services.graphs.node_ids(graph_id, version)

        started, execution_arn = parse_iso(run.execution_started_at or run.started_at), run.execution_arn

        def start_lapsed() -> bool:
            # An EXPRESS execution (its own ARN form) is never served by DescribeExecution: unknown is no news.
            since = time.time() - started.timestamp() if started else float("inf")
            return ":express:" not in execution_arn and since >= START_GRACE_SECONDS

        if runs_sync.reconcile(
            services.runs, services.sfn, run_id, run.execution_arn, node_ids, start_lapsed=start_lapsed
        ):
            run = services.runs.get(run_id)  # as this call or the events function settled it
    return run


def cancel_run(services: Services, run_id: str) -> Run:
    """Stop a RUNNING run's execution and record it CANCELLED; 409 once it has finished."""
    run = get_run(services, run_id)
    if run.status in RUN_TERMINAL:
        raise ConflictError(f"run {run_id} already finished with status {run.status}")
    try:
        stopped = services.sfn.stop_execution(
            executionArn=run.execution_arn, error="stepgraph.Cancelled", cause="cancelled through the stepgraph API"
        )
    except ClientError as exc:
        if exc.response["Error"].get("Code") != "ExecutionDoesNotExist":
            raise UpstreamError(f"StopExecution failed: {exc.response['Error'].get('Code')}") from exc
        # Its StartExecution may still come; once it cannot, reading the run settles it FAILED (get_run).
        raise ConflictError(f"run {run_id} is still being started; cancel it again in a moment") from exc
    run = get_run(services, run_id)  # the execution's real end if it had already finished
    if run.status == RunStatus.RUNNING:  # the stop has not shown in DescribeExecution yet: it is ABORTED
        runs_sync.settle(
            services.runs,
            run_id,
            ExecutionStatus.ABORTED,
            stop_date=stopped.get("stopDate"),
            execution_arn=run.execution_arn,
            sfn=services.sfn,
        )
        run = services.runs.get(run_id)
    return run


def iterations_done(records: list[NodeRecord]) -> dict[str, int]:
    """For each node whose Task the executor cannot answer for (a ``lambda:`` node or registered tool, which the
    Task invokes itself; a person's step, which waits for an answer), how many of its iterations, counted from
    the first, SUCCEEDED: a resume must not invoke or ask those again."""
    by_node: dict[str, dict[int, str]] = {}
    for record in records:
        if (record.tool or "").startswith(("lambda:", "human.")):
            by_node.setdefault(record.node, {})[record.iteration] = record.status
    done: dict[str, int] = {}
    for node, statuses in by_node.items():
        count = 0
        while statuses.get(count + 1) == NodeStatus.SUCCEEDED:
            count += 1
        if count:
            done[node] = count
    return done


def resume_run(services: Services, run_id: str) -> dict[str, Any]:
    """Continue a FAILED, CANCELLED or TIMED_OUT run under its id: a new execution of its version's state
    machine, ``<run_id>-r<n>``, whose document says it is resume ``n``. Nodes that succeeded are replayed
    from their records by the executor (their tools are not run again); the others run.

    The run item moves back to RUNNING first, conditionally (two resumes at once: the second gets 409),
    then the execution starts; if it cannot, the run ends FAILED again with ``StartExecutionFailed``.
    """
    run = get_run(services, run_id)
    if run.status not in RUN_RESUMABLE:
        raise ConflictError(f"run {run_id} is {run.status}: only a FAILED, CANCELLED or TIMED_OUT run can be resumed")
    if run.resumes >= MAX_RESUMES:
        raise ConflictError(
            f"run {run_id} was resumed {run.resumes} times, the most a run can be ({MAX_RESUMES}); start a new run"
        )
    try:
        services.graphs.get(run.graph_id)  # a deleted graph's versions stay readable (its runs show them)
        version = services.graphs.version(run.graph_id, run.version)
    except NotFoundError as exc:
        raise ConflictError(f"run {run_id} cannot be resumed: its graph {run.graph_id} was deleted") from exc
    spec = GraphSpec.model_validate(version.spec)
    number = run.resumes + 1
    name = execution_name(run_id, number)
    done = iterations_done(services.records.list_nodes(run_id))
    document = resumed_document(
        spec, {"run_id": run_id, "graph_id": run.graph_id, "version": run.version}, run.input, number, done
    )
    execution_arn = execution_arn_for(version.state_machine_arn, name)
    if not services.runs.resume(run, execution_arn):
        raise ConflictError(f"run {run_id} changed while it was being resumed (resumed or settled meanwhile)")
    encoded = json.dumps(document, separators=(",", ":"))
    execution_arn = _start_execution(services, run_id, version.state_machine_arn, name, encoded, execution_arn)
    return {
        "run_id": run_id,
        "status": RunStatus.RUNNING,
        "resumes": number,
        "execution_arn": execution_arn,
        "console_url": console_url_for_execution(execution_arn, services.settings.region),
    }


def current_state(services: Services, execution_arn: str, default: Any) -> Any:
    """A running execution's shared ``state``: from the newest state output in its history that has one."""
    try:
        page = services.sfn.get_execution_history(
            executionArn=execution_arn, reverseOrder=True, maxResults=100, includeExecutionData=True
        )
    except ClientError:
        return default
    for event in sorted(page.get("events", []), key=lambda e: e["id"], reverse=True):
        details = event.get("stateExitedEventDetails")
        if not details or (details.get("outputDetails") or {}).get("truncated"):
            continue
        try:
            document = json.loads(details.get("output") or "null")
        except ValueError:
            continue
        if isinstance(document, dict) and isinstance(document.get("state"), dict):
            return document["state"]
    return default


def summary(run: Run, region: str) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "graph_id": run.graph_id,
        "version": run.version,
        "status": run.status,
        "execution_arn": run.execution_arn,
        "console_url": console_url_for_execution(run.execution_arn, region),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "trigger": run.trigger,
        "resumes": run.resumes,
        "executions": [
            {**execution, "console_url": console_url_for_execution(execution["execution_arn"], region)}
            for execution in run.executions()
        ],
    }


def progress(done: int, total: int) -> dict[str, int]:
    return {"done": done, "total": total, "percent": (done * 100 // total) if total else 100}


def listed(services: Services, runs: list[Run]) -> list[dict[str, Any]]:
    """``GET /runs`` items: each run's summary and progress.

    An ended run has every node done (those that never ran are SKIPPED or CANCELLED, as ``detail``
    shows them); only a RUNNING run costs a query of its node records.
    """
    spec_nodes: dict[tuple[str, int], list[str]] = {}
    items = []
    for run in runs:
        key = (run.graph_id, run.version)
        if key not in spec_nodes:
            spec_nodes[key] = services.graphs.node_ids(run.graph_id, run.version)
        nodes = spec_nodes[key]
        if run.status in RUN_TERMINAL:
            done = len(nodes)
        else:
            latest: dict[str, NodeRecord] = {}
            for record in services.records.list_nodes(run.run_id):
                if record.node not in latest or record.iteration > latest[record.node].iteration:
                    latest[record.node] = record
            done = sum(1 for n in nodes if n in latest and latest[n].status in NODE_TERMINAL)
        items.append({**summary(run, services.settings.region), "progress": progress(done, len(nodes))})
    return items


def ref_bytes(value: Any) -> int:
    """Bytes the offloaded values inside ``value`` add when resolved (their references say; nothing is read)."""
    if is_ref(value):
        return int(value[REF_KEY].get("bytes") or 0)
    if isinstance(value, dict):
        return sum(ref_bytes(v) for v in value.values())
    if isinstance(value, list):
        return sum(ref_bytes(v) for v in value)
    return 0


class OutputBudget:
    """How many offloaded bytes one response may still read back whole (the rest is left out, with its size)."""

    def __init__(self, total: int = RESPONSE_OUTPUT_BUDGET, each: int = OUTPUT_INLINE_MAX) -> None:
        self.left = total
        self.each = each

    def take(
        self, services: Services, output: Any, run_id: str, *, paged: str | None = None
    ) -> tuple[Any, dict[str, Any] | None]:
        """``(output, omitted)``: each offloaded value read back whole while it fits, else null.

        ``omitted`` is None when nothing was left out, else ``{"bytes", "fields", "reason"}`` (``fields``:
        the dotted paths left null, ``$`` for the whole output) and, for a ``foreach`` node, ``items_url``.
        """
        left_out: list[tuple[str, int]] = []

        def walk(value: Any, path: str) -> Any:
            if services.offloader.genuine(value, run_id):
                size = ref_bytes(value)
                if size <= min(self.each, self.left):
                    self.left -= size
                    return services.offloader.resolve(value, run_id)
                left_out.append((path or "$", size))
                return None
            if isinstance(value, dict):
                return {k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return value

        if ref_bytes(output) == 0:
            return output, None
        resolved = walk(output, "")
        if not left_out:
            return resolved, None
        omitted: dict[str, Any] = {
            "bytes": sum(size for _, size in left_out),
            "fields": [path for path, _ in left_out],
            "reason": (
                f"a run's response inlines offloaded values up to {self.each} bytes each and "
                f"{RESPONSE_OUTPUT_BUDGET} bytes in all"
            ),
        }
        if paged:
            omitted["items_url"] = paged
        return resolved, omitted


def items_url(run_id: str, node: str) -> str:
    """Where a ``foreach`` node's item results are paged."""
    return f"/runs/{run_id}/nodes/{quote(node, safe='')}/items"


def detail(services: Services, run: Run) -> dict[str, Any]:
    """DESIGN.md's ``GET /runs/{id}`` shape: progress, per-node view, state.

    Outputs are returned whole while they fit the response budget (``OUTPUT_INLINE_MAX`` each,
    ``RESPONSE_OUTPUT_BUDGET`` in all, under Lambda's 6 MB and API Gateway's 10 MB); a larger one is
    ``null`` with ``output_omitted`` saying its size, and a ``foreach`` node's items are paged by
    ``GET /runs/{id}/nodes/{node}/items``.
    """
    spec_nodes = services.graphs.node_ids(run.graph_id, run.version)
    records: dict[str, list[NodeRecord]] = {}
    for record in services.records.list_nodes(run.run_id):
        records.setdefault(record.node, []).append(record)
    nodes: dict[str, dict[str, Any]] = {}
    budget = OutputBudget()
    for node in spec_nodes + [n for n in records if n not in spec_nodes]:
        nodes[node] = _node_view(services, records.get(node, []), run, budget)
    done = sum(1 for n in spec_nodes if nodes[n]["status"] in NODE_TERMINAL)
    total = len(spec_nodes)
    view = summary(run, services.settings.region)
    state = run.state if run.state is not None else run.input
    if run.status == RunStatus.RUNNING:
        state = current_state(services, run.execution_arn, state)
    view.update(
        {
            "input": run.input,
            "state": state,
            "progress": progress(done, total),
            "nodes": nodes,
        }
    )
    view["usage"] = usage(services, [r for rs in records.values() for r in rs if r.tool == LLM_TOOL], run.run_id)
    view["waiting"] = waiting(run, records)
    return view


def waiting(run: Run, records: dict[str, list[NodeRecord]]) -> list[dict[str, Any]]:
    """What a RUNNING run waits for: ``[{"node", "tool", "prompt", "since"}]``, the oldest wait first."""
    if run.status != RunStatus.RUNNING:
        return []
    found = [
        {"node": r.node, "tool": r.tool, "prompt": r.prompt, "since": r.waiting_since}
        for rs in records.values()
        for r in rs
        if r.status == NodeStatus.WAITING
    ]
    return sorted(found, key=lambda w: str(w["since"]))


def usage(services: Services, records: list[NodeRecord], run_id: str) -> dict[str, Any]:
    """DESIGN.md's run ``usage``: model calls, tokens, and their cost by the price table (``llm.converse``).

    An output reused from the cache (``cached``, or a ``foreach`` item's) called no model in this run: it is not
    counted."""
    from functions.executor.tools import _models

    calls = input_tokens = output_tokens = 0
    cost = 0.0
    for record in records:
        if record.status != NodeStatus.SUCCEEDED or record.output is None or record.cached:
            continue
        output = services.offloader.resolve(record.output, run_id)
        outputs = output if isinstance(output, list) else [output]
        if record.items_cached:  # a foreach whose reused items called no model: count the others only
            items = services.records.list_items(run_id, record.node, record.iteration)
            reused = {item.index for item in items if item.cached}
            outputs = [one for index, one in enumerate(outputs) if index not in reused]
        for one in outputs:
            spent = one.get("usage") if isinstance(one, dict) else None
            if not isinstance(spent, dict):
                continue
            tokens_in, tokens_out = int(spent.get("input_tokens") or 0), int(spent.get("output_tokens") or 0)
            calls += 1
            input_tokens += tokens_in
            output_tokens += tokens_out
            cost += _models.cost_usd(str(one.get("model_id", "")), tokens_in, tokens_out)
    return {
        "llm_calls": calls,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "estimated_cost_usd": round(cost, 8),
    }


def _node_view(services: Services, records: list[NodeRecord], run: Run, budget: OutputBudget) -> dict[str, Any]:
    run_status = run.status
    status: str
    if not records:
        if run_status == RunStatus.RUNNING:
            status = NodeStatus.PENDING
        elif run_status == RunStatus.SUCCEEDED:
            status = NodeStatus.SKIPPED
        else:
            status = NodeStatus.CANCELLED
        return {
            "status": status,
            "attempts": 0,
            "iterations": 0,
            "started_at": None,
            "finished_at": None,
            "duration_ms": None,
            "output": None,
            "error": None,
        }
    records = sorted(records, key=lambda r: r.iteration)
    last = records[-1]
    starts = [r.started_at for r in records if r.started_at]
    durations = [r.duration_ms for r in records if r.duration_ms is not None]
    status, error = last.status, last.error
    if status in (NodeStatus.RUNNING, NodeStatus.WAITING) and run_status in RUN_TERMINAL:
        # The run ended while this node's record still says RUNNING (its executor records late, or the
        # settle that marks such nodes has not reached it): report how the run's end left it.
        status = NodeStatus.CANCELLED if run_status == RunStatus.CANCELLED else NodeStatus.FAILED
        error = error or (run.error if status == NodeStatus.FAILED else None)
    paged = items_url(run.run_id, last.node) if last.items_total is not None else None
    output, omitted = budget.take(services, last.output, run.run_id, paged=paged)
    view: dict[str, Any] = {
        "status": status,
        "attempts": sum(r.attempts for r in records),
        "iterations": sum(1 for r in records if r.status != NodeStatus.SKIPPED),
        "started_at": min(starts) if starts else None,
        "finished_at": last.finished_at,
        "duration_ms": sum(durations) if durations else None,
        "output": output,
        "error": error,
        "tool": last.tool,
        "cached": last.cached,
    }
    if last.cached_from is not None:
        view["cached_from"] = last.cached_from
    if omitted is not None:
        view["output_omitted"] = omitted
    if last.items_total is not None:
        view["items_total"] = last.items_total
        view["items_done"] = last.items_done
        if last.items_cached is not None:
            view["items_cached"] = last.items_cached
        view["items_url"] = paged
    return view


def item_page(
    services: Services,
    run_id: str,
    node: str,
    *,
    iteration: int | None = None,
    after: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """``GET /runs/{id}/nodes/{node}/items``: a ``foreach`` node's item results in index order, a page at a time.

    ``next`` is the ``after`` of the following page, null when no more item has a record now (a running
    node's later items appear as they finish). A page stops early once its outputs reach the response
    budget; an item output larger than ``OUTPUT_INLINE_MAX`` is null with ``output_omitted``.
    """
    run = services.runs.get(run_id)
    if iteration is None:
        iteration = services.records.latest_iteration(run_id, node)
        if iteration is None:
            spec_nodes = services.graphs.node_ids(run.graph_id, run.version)
            if node not in spec_nodes:
                raise NotFoundError(f"run {run_id} has no node {node!r}")
            return {"node": node, "iteration": None, "total": None, "done": 0, "items": [], "next": None}
    record = services.records.get_node(run_id, node, iteration)
    if record is None:
        raise NotFoundError(f"node {node!r} of run {run_id} has no iteration {iteration}")
    records, more = services.records.items_page(run_id, node, iteration, after=after, limit=limit)
    budget = OutputBudget()
    items: list[dict[str, Any]] = []
    for item in records:
        if items and budget.left < ref_bytes(item.output):
            more = True
            break
        output, omitted = budget.take(services, item.output, run_id)
        status = item.status
        if status == NodeStatus.RUNNING and run.status in RUN_TERMINAL:  # cut off by the run's end, as _node_view says
            status = NodeStatus.CANCELLED if run.status == RunStatus.CANCELLED else NodeStatus.FAILED
        view: dict[str, Any] = {
            "index": item.index,
            "status": status,
            "attempts": item.attempts,
            "started_at": item.started_at,
            "finished_at": item.finished_at,
            "duration_ms": item.duration_ms,
            "output": output,
            "error": item.error,
            "cached": item.cached,
        }
        if omitted is not None:
            view["output_omitted"] = omitted
        items.append(view)
    return {
        "node": node,
        "iteration": iteration,
        "total": record.items_total,
        "done": record.items_done or 0,
        "items": items,
        "next": items[-1]["index"] if more and items else None,
    }
