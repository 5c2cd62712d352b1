"""The local cloud: moto (DynamoDB, IAM, Step Functions executing state machines for real), in-process
Lambda for the functions of ``template.yaml``, the API Gateway shim and the EventBridge status-change rule.

``with LocalCloud() as cloud:`` gives a stack that behaves like a deployed one: ``cloud.client()`` talks
HTTP to the API function, state machines the API creates run in moto's interpreter and invoke the
executor in-process, and when an execution ends the events function receives the same "Step Functions
Execution Status Change" event EventBridge would deliver. See docs/local-vs-aws.md for the differences.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, SupportsIndex

import boto3
import botocore.handlers
import botocore.loaders
import httpx
from moto import mock_aws

from local import callbacks, moto_speed, strict
from local.apigw import ApiGatewayShim
from local.bedrock import StandInModel
from local.iam import IamAudit, current_function
from local.lambdas import InvokeResult, LambdaDispatcher
from local.priority import ForegroundGate, PriorityLock
from local.scheduler import LocalScheduler
from local.streams import TableStream
from local.template import LOCAL_ACCOUNT_ID, LOCAL_STACK_NAME, Template, pattern_matches
from local.wsapi import LocalWebSockets
from statemachine.status import EXECUTION_TERMINAL, ExecutionStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import TracebackType

    from local.lambdas import Handler, LocalFunction
    from local.template import EventRule, FunctionSpec

LOG = logging.getLogger(__name__)

DEFAULT_API_KEY = "local-dev-key"
MOTO_CONFIG: dict[str, Any] = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# How long an emulated async retry waits (Lambda waits about a minute, then two).
RETRY_DELAY_SECONDS = 0.05
# How long StopExecution waits for an execution started a moment ago to have begun in moto.
STOP_WAIT_SECONDS = 10.0
# The functions behind API Gateway (HTTP and WebSocket): a user waits on their answers.
FOREGROUND_FUNCTIONS = ("ApiFunction", "LiveFunction")
# DynamoDB actions that change nothing: they may run at the same time as each other.
DYNAMODB_READS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "DescribeTable",
        "DescribeTimeToLive",
        "ListTables",
    }
)

_active_lock = threading.Lock()
_active: LocalCloud | None = None
# botocore reads and parses every service's model files once per session; each local cloud starts a fresh
# default session, so they share one loader instead of parsing the same JSON again (~40 ms per client).
_shared_loader: Any = None


@dataclass
class Delivery:
    """One status-change event and what became of it."""

    event: dict[str, Any]
    rule: str
    function: str
    attempts: int = 0
    result: InvokeResult | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.result is not None and self.result.function_error is None


@dataclass
class StatusChangeBus:
    """Emulates the EventBridge rule(s) on "Step Functions Execution Status Change".

    Events are queued in the order executions end and delivered one at a time by a single thread, so none
    is reordered; a function error is retried ``max_retries`` times (as Lambda's async invoke does), then
    the event goes to ``dead_letters`` (the rule's dead-letter queue in AWS).
    """

    dispatcher: LambdaDispatcher
    rules: list[EventRule]
    function_names: dict[str, str]
    deliveries: list[Delivery] = field(default_factory=list)
    dead_letters: list[Delivery] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    _queue: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ending: int = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="local-eventbridge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.drain(timeout)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def put(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    @contextlib.contextmanager
    def ending(self) -> Iterator[None]:
        """Bracket an execution's end: its terminal status is visible to DescribeExecution inside the block
        before its event is put, so ``drain`` must also wait for ends still in progress."""
        with self._lock:
            self._ending += 1
        try:
            yield
        finally:
            with self._lock:
                self._ending -= 1

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every execution end in progress is queued and every queued event has been handled;
        False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self._ending or self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event delivered to a function, in delivery order."""
        with self._lock:
            return [d.event for d in self.deliveries if d.delivered]

    def _loop(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            except Exception:  # the bus must outlive any one bad event
                LOG.exception("status-change delivery failed")
            finally:
                self._queue.task_done()

    def _deliver(self, event: dict[str, Any]) -> None:
        matched = [rule for rule in self.rules if pattern_matches(rule.pattern, event)]
        if not matched:
            with self._lock:
                self.unmatched.append(event)
            return
        for rule in matched:
            delivery = Delivery(event, rule.name, self.function_names[rule.function])
            for attempt in range(rule.max_retries + 1):
                delivery.attempts = attempt + 1
                try:
                    delivery.result = self.dispatcher.invoke(delivery.function, event)
                except LookupError as exc:
                    delivery.error = str(exc)
                    break
                if delivery.result.function_error is None:
                    break
                delivery.error = delivery.result.payload.decode(errors="replace")
                time.sleep(RETRY_DELAY_SECONDS)
            with self._lock:
                self.deliveries.append(delivery)
                if not delivery.delivered:
                    LOG.warning("status-change event for %s not processed: %s", event["detail"]["name"], delivery.error)
                    self.dead_letters.append(delivery)


def status_change_event(execution: Any, account_id: str, region: str) -> dict[str, Any]:
    """The "Step Functions Execution Status Change" event EventBridge delivers for a moto execution."""
    status = _status_value(execution.exec_status)
    output = execution.output if status == ExecutionStatus.SUCCEEDED else None
    now = datetime.now(UTC)
    stop = execution.stop_date or now
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account_id,
        "time": stop.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": _epoch_ms(execution.start_date),
            "stopDate": _epoch_ms(stop),
            "input": json.dumps(execution.input_data, separators=(",", ":")),
            "output": None if output is None else json.dumps(output, separators=(",", ":")),
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if output is not None else None,
            "error": execution.error or None,
            "cause": execution.cause or None,
        },
    }


def _status_value(status: Any) -> str:
    return str(getattr(status, "value", status))


def _epoch_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _share_model_loader() -> None:
    """Give boto3's default session the process-wide loader of service models."""
    global _shared_loader
    if _shared_loader is None:
        _shared_loader = botocore.loaders.create_loader()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION._session.register_component("data_loader", _shared_loader)


class LocalCloud:
    """Context manager running the whole stack in-process; only one is active at a time (the environment
    variables and boto3's default session are process-wide)."""

    def __init__(
        self,
        *,
        template_path: Path | str | None = None,
        stack_name: str = LOCAL_STACK_NAME,
        region: str = "us-east-1",
        api_key: str | None = DEFAULT_API_KEY,
        env: dict[str, str] | None = None,
        shutdown_grace: float = 3.0,
        iam: str | None = None,
    ) -> None:
        self.region = region
        self.account_id = LOCAL_ACCOUNT_ID
        self.api_key = api_key
        self.template = Template.load(template_path, stack_name=stack_name, region=region)
        self.functions: dict[str, FunctionSpec] = self.template.functions()
        self.table_spec = self.template.table()
        self.environment = self._environment(env or {})
        self.dispatcher = LambdaDispatcher(region, self.account_id)
        self.bedrock = StandInModel()
        names = {logical_id: spec.name for logical_id, spec in self.functions.items()}
        self.app = ApiGatewayShim(self.dispatcher, self.template.api_routes(), names, self.template.stage_name())
        self.bus = StatusChangeBus(self.dispatcher, self.template.event_rules(), names)
        self.streams: list[TableStream] = []
        self.websockets: LocalWebSockets | None = None
        if "LiveFunction" in self.functions:
            stage = str(self.template.resolve({"Ref": "StageName"}))
            self.websockets = LocalWebSockets(self.dispatcher, self.functions["LiveFunction"].name, stage=stage)
        # API requests first (local/priority.py): in AWS the functions behind API Gateway have CPUs of their own.
        foreground = {spec.name for logical_id, spec in self.functions.items() if logical_id in FOREGROUND_FUNCTIONS}

        def is_foreground() -> bool:
            return current_function.get() in foreground

        self._dynamodb_lock = PriorityLock(is_foreground)
        self.gate = ForegroundGate(is_foreground, self._dynamodb_lock.held_here)
        self.dispatcher.serving = lambda name: self.gate.serving(name in foreground)
        iam = iam or os.environ.get("STEPGRAPH_LOCAL_IAM") or "audit"
        if iam not in ("audit", "enforce", "off"):
            raise ValueError(f"iam must be 'audit', 'enforce' or 'off', not {iam!r}")
        self.iam = IamAudit(self.template, enforce=iam == "enforce")
        self._iam_mode = iam
        # EventBridge Scheduler: moto stores the schedules, this fires them (tests tick it; make dev starts it).
        self.scheduler = LocalScheduler(
            self.dispatcher, self.account_id, region, iam=None if iam == "off" else self.iam
        )
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._restore: list[Any] = []
        self._published: set[str] = set()
        self._executions: weakref.WeakSet[Any] = weakref.WeakSet()
        self._interpreters = 0  # moto execution threads still evaluating
        self._interpreters_done = threading.Condition()
        self._stopping = False
        self.shutdown_grace = shutdown_grace
        self._published_lock = threading.Lock()
        self._setup_clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalCloud:
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError("another LocalCloud is running in this process; stop it first")
            _active = self
        try:
            self._set_env({**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region})
            self._mock = mock_aws(config=MOTO_CONFIG)  # type: ignore[call-overload]
            self._mock.start()
            if self._iam_mode != "off":
                audit = ("before-parameter-build", self.iam.on_parameters)
                botocore.handlers.BUILTIN_HANDLERS.append(audit)
                self._restore.append(lambda: botocore.handlers.BUILTIN_HANDLERS.remove(audit))
                self.dispatcher.on_invoke = self.iam.on_interpreter_invoke
            give_way = ("before-call", self.gate.give_way)
            botocore.handlers.BUILTIN_HANDLERS.append(give_way)
            self._restore.append(lambda: botocore.handlers.BUILTIN_HANDLERS.remove(give_way))
            boto3.setup_default_session(region_name=self.region)
            _share_model_loader()
            self._set_env(self.environment)
            _clear_settings_cache()
            self._create_table()
            self._create_states_role()
            self._create_role("ToolRole")
            self._create_schedule_groups()
            for spec in self.functions.values():
                self.dispatcher.add_function(spec)
            self.dispatcher.passthrough = self._exists_in_moto_lambda
            self.dispatcher.sandboxed = self._registered_tool
            self.dispatcher.install()
            self.bedrock.install()
            self._install_status_change_rule()
            self._install_execution_fixes()
            self._reuse_interpreter_clients()
            self._restore.append(strict.install())
            self._restore.append(callbacks.install())
            self._serialize_dynamodb()
            self._give_way_between_states()
            self._give_way_while_requests_sleep()
            self._restore.append(moto_speed.install())
            self._start_stream_mappings()
            if self.websockets is not None:
                self.websockets.install()
            self._query_one_partition()
            self.bus.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        global _active
        try:
            # Executions and handlers left running would otherwise go on after the mock stops, writing to
            # the next LocalCloud's backends (or trying the network). Abort them and let handlers return.
            self._stopping = True
            self.scheduler.stop()
            self._abort_running_executions()
            deadline = time.monotonic() + self.shutdown_grace
            if not self.dispatcher.wait_idle(self.shutdown_grace):
                LOG.warning("%d Lambda handler(s) still running at shutdown", self.dispatcher.in_flight)
            with self._interpreters_done:
                if not self._interpreters_done.wait_for(
                    lambda: self._interpreters == 0, max(0.0, deadline - time.monotonic())
                ):
                    LOG.warning("%d execution(s) still evaluating at shutdown", self._interpreters)
            if self.websockets is not None:
                self.websockets.stop()
            self.bus.stop()
            for stream in self.streams:
                stream.stop()
            if self.websockets is not None:
                self.websockets.uninstall()
            for undo in reversed(self._restore):
                undo()
            self._restore.clear()
            self.dispatcher.uninstall()
            self.bedrock.uninstall()
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
            self._setup_clients.clear()
        finally:
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env.clear()
            _clear_settings_cache()
            with _active_lock:
                if _active is self:
                    _active = None

    # ------------------------------------------------------------------ what tests and the server use

    def client(self, api_key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An HTTP client on the API (in-process, no socket); sends ``x-api-key`` when ``api_key`` is given."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if api_key is not None:
            headers["x-api-key"] = api_key
        return httpx.Client(
            transport=httpx.WSGITransport(app=self.app), base_url="http://testserver", headers=headers, **kwargs
        )

    def serve_websockets(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the WebSocket API on ``host:port`` (0: any free port); its ``ws://`` URL."""
        if self.websockets is None:
            raise RuntimeError("the template has no WebSocket API (LiveFunction)")
        self.websockets.host, self.websockets.port = host, port
        self.websockets.start()
        if not self.environment.get("STEPGRAPH_WS_URL"):  # the console's live events (GET /console)
            self.environment["STEPGRAPH_WS_URL"] = self.websockets.url
            self._set_env({"STEPGRAPH_WS_URL": self.websockets.url})
            _clear_settings_cache()
        return self.websockets.url

    def register(self, name: str, handler: Handler, *, timeout: float = 3, memory: int = 128) -> LocalFunction:
        """Serve ``handler(event, context)`` as the Lambda function ``name`` (for ``lambda:<name>`` nodes)."""
        return self.dispatcher.register(name, handler, timeout=timeout, memory=memory)

    def invoke(self, function: str, event: Any) -> InvokeResult:
        """Invoke a function by logical id (``ApiFunction``), name or ARN, as ``sam local invoke`` would."""
        if function in self.functions:
            function = self.functions[function].name
        return self.dispatcher.invoke(function, event)

    def function_name(self, logical_id: str) -> str:
        return self.functions[logical_id].name

    @property
    def table_name(self) -> str:
        return self.table_spec.name

    @property
    def states_role_arn(self) -> str:
        return self.template.arn("StatesRole")

    def drain_events(self, timeout: float = 10.0) -> bool:
        """Wait until every status-change event so far has reached the events function, and every table
        write so far has reached the stream function (run events are numbered by then)."""
        return self.bus.drain(timeout) and all(stream.drain(timeout) for stream in self.streams)

    def drain_streams(self, timeout: float = 10.0) -> bool:
        """Wait until every table write so far has reached the stream function."""
        return all(stream.drain(timeout) for stream in self.streams)

    # ------------------------------------------------------------------ setup steps

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        """The union of the functions' environments (they share Globals), plus the local API key."""
        env: dict[str, str] = {}
        self.env_conflicts: dict[str, set[str]] = {}
        for spec in self.functions.values():
            for key, value in spec.environment.items():
                if key == "AWS_ENDPOINT_URL":
                    continue  # declared for `sam local invoke`; in process, moto answers every AWS call
                if key in env and env[key] != value:
                    self.env_conflicts.setdefault(key, {env[key]}).add(value)
                    LOG.warning("functions disagree on %s; the local cloud uses %r", key, env[key])
                    continue
                env[key] = value
        if self.api_key:
            env["STEPGRAPH_API_KEY"] = self.api_key
        # The template's WebSocket API URL is an AWS host; locally there is one only once serve_websockets runs.
        if "STEPGRAPH_WS_URL" in env:
            env["STEPGRAPH_WS_URL"] = ""
        env.update(extra)
        return env

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved_env:
                self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value

    def _create_table(self) -> None:
        client = self._setup_client("dynamodb")
        client.create_table(**self.table_spec.create_table_kwargs())
        if self.table_spec.ttl_attribute:
            client.update_time_to_live(
                TableName=self.table_spec.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": self.table_spec.ttl_attribute},
            )

    def _create_schedule_groups(self) -> None:
        """The template's EventBridge Scheduler groups and the role schedules invoke as (in moto)."""
        groups = self.template.resources_of_type("AWS::Scheduler::ScheduleGroup")
        if not groups:
            return
        scheduler = self._setup_client("scheduler")
        for logical_id in groups:
            scheduler.create_schedule_group(Name=self.template.physical_name(logical_id))
        if "SchedulerRole" in self.template.resources:
            self._create_role("SchedulerRole")

    def _setup_client(self, service: str) -> Any:
        """One client per service for creating the stack's resources (each client costs ~40 ms to build)."""
        if service not in self._setup_clients:
            self._setup_clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._setup_clients[service]

    def _create_states_role(self) -> None:
        self._create_role("StatesRole")

    def _create_role(self, logical_id: str) -> None:
        props = self.template.role(logical_id)
        iam = self._setup_client("iam")
        name = self.template.physical_name(logical_id)
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )

    def _start_stream_mappings(self) -> None:
        """Emulate the event source mappings on the table's stream (``DynamoDB`` events in the template)."""
        if not self.table_spec.stream_view_type:
            return
        stream_arn = self.template.resolve({"Fn::GetAtt": [self.table_spec.logical_id, "StreamArn"]})
        for mapping in self.template.stream_mappings():
            name = self.functions[mapping.function].name

            def deliver(records: list[dict[str, Any]], name: str = name) -> Any:
                result = self.dispatcher.invoke(name, {"Records": records})
                if result.function_error is not None:
                    raise RuntimeError(result.payload.decode(errors="replace"))
                return result.json()

            stream = TableStream(
                self.table_spec.name,
                str(stream_arn),
                deliver,
                batch_size=mapping.batch_size,
                max_retries=mapping.max_retries,
                filters=mapping.filters,
            )
            stream.install()
            stream.start()
            self.streams.append(stream)

    def _abort_running_executions(self) -> None:
        for execution in list(self._executions):
            if _status_value(execution.exec_status) == ExecutionStatus.RUNNING:
                try:
                    execution.stop(datetime.now(UTC), None, None)
                except Exception:  # a worker that never started has no environment to stop
                    LOG.debug("could not stop %s", execution.exec_arn, exc_info=True)

    def _exists_in_moto_lambda(self, function_name: str) -> bool:
        from moto.awslambda_simple.models import lambda_simple_backends

        try:
            lambda_simple_backends[self.account_id][self.region].get_function(function_name)
        except Exception:
            return False
        return True

    def _registered_tool(self, function_name: str) -> Callable[[bytes], tuple[str | None, bytes]] | None:
        """A runner for a registered tool's function (``<prefix>-tool-*`` in moto): its zip, sandboxed."""
        from moto.awslambda_simple.models import lambda_simple_backends

        from local.toolbox import run_zip

        name, _, qualifier = function_name.split(":function:")[-1].partition(":")
        if not name.startswith(f"{self.environment.get('STEPGRAPH_PREFIX', 'stepgraph')}-tool-"):
            return None
        try:
            fn = lambda_simple_backends[self.account_id][self.region].get_function(name, qualifier or None)
        except Exception:
            return None
        code, timeout, memory = bytes(fn.code_bytes), float(fn.timeout), int(fn.memory_size)

        def run(body: bytes) -> tuple[str | None, bytes]:
            outcome = run_zip(code, body, timeout=timeout, memory_mb=memory)
            return ("Unhandled" if outcome.error_type else None), outcome.payload()

        return run

    def _install_status_change_rule(self) -> None:
        """Hook moto's execution end (the worker's ``terminated``) to publish the status-change event."""
        from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

        original = BaseExecutionWorkerCommunication.terminated
        cloud = self

        def terminated(comm: Any) -> None:
            with cloud.bus.ending():
                original(comm)
                try:
                    cloud._execution_ended(comm.execution)
                except Exception:
                    LOG.exception("could not publish the status-change event")

        BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(BaseExecutionWorkerCommunication, "terminated", original))

    def _install_error_name_fix(self) -> None:
        from moto.stepfunctions.parser.asl.component.common.error_name import custom_error_name, states_error_name
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
        from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl

        original = custom_error_name.CustomErrorName

        def error_name(error_name: str) -> Any:
            if isinstance(error_name, str) and error_name.startswith("States."):
                try:
                    return states_error_name.StatesErrorName.from_name(error_name)
                except (ValueError, KeyError):
                    pass
            return original(error_name=error_name)

        for module in (branches_decl, iteration_worker):
            module.CustomErrorName = error_name  # type: ignore[attr-defined]
            self._restore.append(lambda module=module: setattr(module, "CustomErrorName", original))

    def _reuse_interpreter_clients(self) -> None:
        """moto's interpreter builds a new boto3 client (~40 ms) for every Task it runs; keep one per service and
        region while this cloud runs, as a real Step Functions keeps its connections (clients are thread-safe)."""
        import sys

        from moto.stepfunctions.parser.asl.utils import boto_client

        original = boto_client.boto_client_for
        clients: dict[tuple[str, str], Any] = {}
        lock = threading.Lock()

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            # moto signs every interpreter call with the same fixed key whatever the credentials (local/iam.py).
            with lock:
                if (region, service) not in clients:
                    clients[region, service] = original(region=region, service=service)
                return clients[region, service]

        def swap(old: Any, new: Any) -> None:
            # Modules imported while this cloud ran took the replacement from boto_client: swapped back too.
            for name, module in list(sys.modules.items()):
                if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is old:
                    module.boto_client_for = new  # type: ignore[attr-defined]

        swap(original, boto_client_for)
        self._restore.append(clients.clear)
        self._restore.append(lambda: swap(boto_client_for, original))

    def _install_execution_fixes(self) -> None:
        """Make three moto behaviours match AWS: an execution started without a name gets a UUID (moto names
        it "None", so the second such start fails), StopExecution makes the execution ABORTED at once
        (moto keeps it RUNNING until the state in progress returns, e.g. a Lambda task still running), and a
        Parallel branch or Map iteration failing with a ``States.*`` error fails its state with that error
        (moto raises ``States.Runtime``: it rebuilds the name as a custom one, which may not start so)."""
        self._install_error_name_fix()
        from moto.stepfunctions.parser.api import ExecutionStatus
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
        from moto.stepfunctions.parser.backend.execution import Execution
        from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        original_start = StepFunctionsParserBackend.start_execution
        original_stop = Execution.stop
        original_execution_start = Execution.start
        original_logic = ExecutionWorker._execution_logic
        cloud = self

        def execution_logic(worker: Any) -> None:
            # Counted so that stop() can let a stopped execution's thread end before the mock goes.
            with cloud._interpreters_done:
                cloud._interpreters += 1
            try:
                original_logic(worker)
            finally:
                with cloud._interpreters_done:
                    cloud._interpreters -= 1
                    cloud._interpreters_done.notify_all()

        def start_execution(backend: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
            return original_start(backend, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

        def start(execution: Any) -> None:
            # Known as this stack's before its thread runs: a short execution can end before StartExecution
            # returns, and its status-change event must not be taken for another LocalCloud's.
            cloud._executions.add(execution)
            original_execution_start(execution)

        def stop(execution: Any, stop_date: datetime, error: str | None, cause: str | None) -> None:
            worker = execution.exec_worker
            # moto's worker builds its environment on the execution's own thread; a stop that comes first
            # would fail on it, where AWS stops an execution however young.
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            while worker is not None and getattr(worker, "env", None) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            with cloud.bus.ending():
                original_stop(execution, stop_date, error, cause)
                env = getattr(worker, "env", None)
                if env is not None and isinstance(env.program_state(), ProgramStopped):
                    execution.exec_status = ExecutionStatus.ABORTED
                    execution.stop_date = stop_date if stop_date.tzinfo else stop_date.replace(tzinfo=UTC)
                    cloud._execution_ended(execution)

        StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign,assignment]
        Execution.stop = stop  # type: ignore[method-assign,assignment]
        Execution.start = start  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(Execution, "start", original_execution_start))
        ExecutionWorker._execution_logic = execution_logic  # type: ignore[method-assign]
        self._restore.append(lambda: setattr(ExecutionWorker, "_execution_logic", original_logic))
        self._restore.append(lambda: setattr(StepFunctionsParserBackend, "start_execution", original_start))
        self._restore.append(lambda: setattr(Execution, "stop", original_stop))

    def _serialize_dynamodb(self) -> None:
        """Run moto's DynamoDB writes one at a time. moto has no locking: a conditional write checks, then
        writes, so two threads could both pass ``attribute_not_exists``, and a read could see an item an
        update is still changing. In AWS each item write is atomic; one lock gives the same guarantee. Reads
        share it, and requests of the functions behind API Gateway go first, so a big run's background work
        doesn't keep an API answer waiting (in AWS they share nothing)."""
        from moto.dynamodb.responses import DynamoHandler

        lock = self._dynamodb_lock
        original = DynamoHandler.call_action

        def call_action(handler: Any) -> Any:
            write = handler.get_endpoint_name(handler.headers) not in DYNAMODB_READS
            lock.acquire(write=write)
            try:
                return original(handler)
            finally:
                lock.release()

        DynamoHandler.call_action = call_action  # type: ignore[method-assign]
        self._restore.append(lambda: setattr(DynamoHandler, "call_action", original))

    def _give_way_between_states(self) -> None:
        """Let an execution's threads wait at each state while an API request is young (``ForegroundGate``):
        between its AWS calls, a ``Map`` item thread spends its CPU on the interpreter's states."""
        from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

        original = CommonStateField._eval_body
        gate = self.gate

        def eval_body(state: Any, env: Any) -> None:
            gate.give_way()
            original(state, env)

        CommonStateField._eval_body = eval_body  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(CommonStateField, "_eval_body", original))

    def _give_way_while_requests_sleep(self) -> None:
        """``time.sleep`` sets the sleeping thread's foreground window aside: an API request that waits for a
        run (``?wait=``, reading it every so often) must not hold that run back while it sleeps."""
        original = time.sleep
        gate = self.gate

        def sleep(seconds: float | SupportsIndex) -> None:
            with gate.idle():
                original(seconds)

        time.sleep = sleep
        self._restore.append(lambda: setattr(time, "sleep", original))

    def _query_one_partition(self) -> None:
        """Let a table ``Query`` read only its partition. moto reads and sorts every item of the table for each
        query (its results are the same), so a run's queries got slower with every item any run wrote: with
        a 10,000-item ``foreach`` in the table, each one took about a second. DynamoDB reads the partition, and
        of it only the sort keys the key condition selects."""
        from moto.dynamodb.comparisons import get_comparison_func
        from moto.dynamodb.models.table import Table

        partition = threading.local()
        original_query = Table.query
        original_all_items = Table.all_items

        def all_items(table: Any) -> Any:
            hash_key = getattr(partition, "key", None)
            if hash_key is None:
                return original_all_items(table)
            items = table.items.get(hash_key, {})
            comparison, operands = partition.range
            if comparison is None:
                return list(items.values())
            # Only the items the key condition selects, as DynamoDB reads them: moto would size every item of
            # the partition against the 1 MB page limit before comparing its sort key. String keys are compared
            # as the strings they are (moto's own comparison, without its per-key casting: a 10,000-item
            # partition took 200 ms a query).
            compare = get_comparison_func(comparison)
            if compare is not None and all(operand.type == "S" for operand in operands):
                values = [operand.value for operand in operands]
                return [
                    item
                    for key, item in items.items()
                    if (compare(key.value, *values) if key.type == "S" else key.compare(comparison, operands))
                ]
            return [item for item in items.values() if item.range_key.compare(comparison, operands)]

        def query(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
            if index_name or not table.range_key_attr or hash_key is None:
                return original_query(table, hash_key, *args, **kwargs)
            comparison = args[0] if args else kwargs.get("range_comparison")
            operands = args[1] if len(args) > 1 else kwargs.get("range_objs")
            partition.key, partition.range = hash_key, (comparison, operands)
            try:
                return original_query(table, hash_key, *args, **kwargs)
            finally:
                partition.key = None

        Table.query = query  # type: ignore[method-assign,assignment]
        Table.all_items = all_items  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(Table, "query", original_query))
        self._restore.append(lambda: setattr(Table, "all_items", original_all_items))

    def _execution_ended(self, execution: Any) -> None:
        # Express workflows send no status-change events to EventBridge; standard ones do.
        if _status_value(getattr(execution, "sm_type", "STANDARD")) != "STANDARD":
            return
        if _status_value(execution.exec_status) not in EXECUTION_TERMINAL:
            return
        if self._stopping or execution not in self._executions:
            # An execution of an earlier LocalCloud in this process, ending late: not this stack's.
            return
        with self._published_lock:
            # A stopped execution ends twice in moto (at StopExecution, then when its last state returns).
            if execution.exec_arn in self._published:
                return
            self._published.add(execution.exec_arn)
        self.bus.put(status_change_event(execution, self.account_id, self.region))


def _clear_settings_cache() -> None:
    try:
        from functions.settings import get_settings
    except ImportError:  # pragma: no cover - functions/ always ships with local/
        return
    get_settings.cache_clear()
