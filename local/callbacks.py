"""``.waitForTaskToken`` in moto, made to end as AWS ends it: a wait that timed out refuses its answer.

moto times a callback Task out on the state's own timer and never tells the token: a SendTaskSuccess that comes
after (or races) the timeout succeeds, and its answer is lost while the node fails with ``States.Timeout``. AWS
answers ``TaskTimedOut`` instead. Here the wait itself decides, under one lock shared with SendTaskSuccess and
SendTaskFailure: either the answer was taken before the timeout (the Task succeeds with it), or the token is
marked timed out first (every later answer gets ``TaskTimedOut``). The state's own timer is moved
``GRACE_SECONDS`` later so that it never decides before the wait does, and the wait stops as soon as its
execution is stopped (which stays ABORTED: the error that ends the wait does not make it FAILED).
SendTaskSuccess/SendTaskFailure answer AWS's errors (``TaskTimedOut``, ``TaskDoesNotExist``,
``InvalidToken``), which moto's own raise with the wrong type.

Also ``state_machine_of_token``: which state machine a token belongs to (IAM scopes SendTask* to it).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

GRACE_SECONDS = 5
WAIT_SLICE_SECONDS = 0.2
_lock = threading.Lock()


def install() -> Callable[[], None]:
    """Patch moto's callback Task and pool manager; returns the undo."""
    from moto.stepfunctions.exceptions import AWSError
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackConsumerTimeout,
        CallbackNotifyConsumerError,
        CallbackOutcomeFailure,
        CallbackOutcomeSuccess,
        CallbackOutcomeTimedOut,
        CallbackPoolManager,
    )
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    saved: list[tuple[Any, str, Any]] = []

    def replace(owner: Any, name: str, value: Any) -> Any:
        """Set ``owner.name``; the function it replaces (its own, or the one it inherited)."""
        saved.append((owner, name, owner.__dict__.get(name)))
        original = getattr(owner, name)
        setattr(owner, name, value)
        return original

    def notify(manager: Any, callback_id: str, outcome: Any) -> bool:
        with _lock:
            return bool(original_notify(manager, callback_id, outcome))

    original_notify = replace(CallbackPoolManager, "notify", notify)

    def wait_for_token(
        state: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        if heartbeat_endpoint is not None:
            return original_wait(state, env, timeout_seconds, callback_endpoint, heartbeat_endpoint)
        deadline = time.monotonic() + max(0, timeout_seconds - GRACE_SECONDS)
        # in slices, so a stopped execution (StopExecution, the local cloud's shutdown) stops waiting at once
        while env.is_running() and callback_endpoint.get_outcome() is None:
            left = deadline - time.monotonic()
            if left <= 0 or callback_endpoint.wait(timeout=min(left, WAIT_SLICE_SECONDS)) is not None:
                break
        with _lock:
            outcome = callback_endpoint.get_outcome()
            if outcome is None:
                callback_endpoint.report(CallbackConsumerTimeout())
        return outcome if outcome is not None else CallbackOutcomeTimedOut(callback_id=callback_endpoint.callback_id)

    original_wait = replace(StateTaskServiceCallback, "_eval_wait_for_task_token", wait_for_token)

    def evaluate_with_timeout(state: Any, env: Any) -> None:
        if getattr(state.resource, "condition", None) == ResourceCondition.WaitForTaskToken:
            # Both timers read state.timeout: the state's (outer) one waits the grace longer, the callback wait
            # (wait_for_token) takes it off again, so the wait decides first. Once per parsed state.
            with _lock:
                seconds = getattr(state.timeout, "timeout_seconds", None)
                if isinstance(seconds, int) and not getattr(state, "_stepgraph_graced", False):
                    state.timeout = TimeoutSeconds(timeout_seconds=seconds + GRACE_SECONDS)
                    state._stepgraph_graced = True
        original_eval(state, env)

    original_eval = replace(StateTaskServiceCallback, "_evaluate_with_timeout", evaluate_with_timeout)

    def answer(backend: Any, task_token: str, outcome: Any) -> None:
        """Hand ``outcome`` to the running execution waiting on ``task_token``, with AWS's errors when none does
        (moto raises them with a wrong type and no message)."""
        for execution in backend._get_executions(ExecutionStatus.RUNNING):
            pool = getattr(getattr(execution.exec_worker, "env", None), "callback_pool_manager", None)
            if pool is None:
                continue
            try:
                if pool.notify(callback_id=task_token, outcome=outcome):
                    return
            except CallbackNotifyConsumerError as exc:
                if isinstance(exc.callback_consumer_error, CallbackConsumerTimeout):
                    raise AWSError("Task Timed Out: the task's wait ended before this answer", "TaskTimedOut") from None
                raise AWSError("Task does not exist anymore", "TaskDoesNotExist") from None
        raise AWSError("Invalid token", "InvalidToken")

    def send_task_success(backend: Any, task_token: str, outcome: str) -> None:
        answer(backend, task_token, CallbackOutcomeSuccess(callback_id=task_token, output=outcome))

    def send_task_failure(backend: Any, task_token: str, error: Any = None, cause: Any = None) -> None:
        answer(backend, task_token, CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause))

    replace(StepFunctionsParserBackend, "send_task_success", send_task_success)
    replace(StepFunctionsParserBackend, "send_task_failure", send_task_failure)

    def set_error(env: Any, error: Any) -> None:
        # a stopped execution stays ABORTED: the wait it stopped ends with an error, which must not make it FAILED
        if isinstance(env.program_state(), ProgramStopped):
            return
        original_set_error(env, error)

    original_set_error = replace(Environment, "set_error", set_error)

    def undo() -> None:
        while saved:
            owner, name, original = saved.pop()
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    return undo


def state_machine_of_token(token: str) -> str | None:
    """The ARN of the state machine whose running execution issued ``token`` (None when none did)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for account in list(stepfunctions_parser_backends):
        for region in list(stepfunctions_parser_backends[account]):
            backend = stepfunctions_parser_backends[account][region]
            for machine in list(backend.state_machines):
                for execution in list(machine.executions):
                    worker = getattr(execution, "exec_worker", None)
                    env = getattr(worker, "env", None)
                    pool = getattr(env, "callback_pool_manager", None)
                    if pool is not None and pool.get(token) is not None:
                        return str(execution.state_machine_arn)
    return None
