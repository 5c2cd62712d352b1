"""AWS's Step Functions limits, enforced in moto's ASL interpreter so that the local cloud is at least as strict
as AWS (DESIGN.md, "AWS-strict local cloud"; docs/local-vs-aws.md lists what remains different).

``install()`` patches moto's classes and returns the function that undoes it; ``LocalCloud`` calls it. The rules:

- a state's input, Parameters, result and output, and a Parallel's or Map's combined result, at most
  262,144 bytes, else the execution fails with ``States.DataLimitExceeded``;
- ``States.DataLimitExceeded`` and ``States.Runtime`` are neither caught nor retried (not even by ``States.ALL``);
- a definition at most 1,048,576 bytes (CreateStateMachine/UpdateStateMachine refuse it), with no Fail state
  whose ``Error`` starts with ``States.`` and no transition to a missing state; an execution input at most
  262,144 bytes (StartExecution refuses it);
- at most 25,000 history events per execution, else it fails with ``States.Runtime``;
- at most 10,000 state machines in an account and Region (its default quota): CreateStateMachine refuses the
  next with ``StateMachineLimitExceeded``;
- an inline Map runs at most 40 iterations at once;
- ``ValidateStateMachineDefinition`` (which moto lacks) answers with moto's parser and these definition rules;
- and in DynamoDB: an ``UpdateItem`` that ``ADD``s members to a set is held to the item size limit like any other
  write (moto appends them without looking; it checks ``SET`` and ``PutItem``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MAX_PAYLOAD_BYTES = 262_144
MAX_DEFINITION_BYTES = 1_048_576
MAX_HISTORY_EVENTS = 25_000
MAX_INLINE_MAP_CONCURRENCY = 40
# The quota on registered state machines per account and Region (adjustable on AWS; read at each call).
MAX_STATE_MACHINES = 10_000
# moto's item size limit for SET and PutItem (DynamoDB's documented 400 KB, as moto measured AWS to enforce it).
MAX_ITEM_BYTES = 405_000
UNCATCHABLE_ERRORS = frozenset({"States.DataLimitExceeded", "States.Runtime"})
RESERVED_PREFIX = "States."
# History events that end an execution: they are written even when the cap is reached.
TERMINAL_EVENTS = frozenset({"ExecutionFailed", "ExecutionSucceeded", "ExecutionAborted", "ExecutionTimedOut"})


@dataclass(frozen=True)
class Diagnostic:
    """One problem of a definition, shaped like ``ValidateStateMachineDefinition``'s diagnostics."""

    code: str
    message: str
    location: str = ""
    severity: str = "ERROR"

    def to_dict(self) -> dict[str, str]:
        out = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.location:
            out["location"] = self.location
        return out


def payload_bytes(value: Any) -> int:
    """The size Step Functions counts: the value as compact UTF-8 JSON (a string as it is). A lone surrogate
    (which JSON can carry as an escape) counts as its three bytes rather than failing the count."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def definition_diagnostics(definition: str) -> list[Diagnostic]:
    """What AWS refuses in ``definition`` that moto's parser lets through: its size, Fail states with a
    reserved (``States.``) error name, and a ``StartAt``, ``Next``, ``Default`` or Catch target that is not a
    state of its scope."""
    problems: list[Diagnostic] = []
    size = len(definition.encode("utf-8"))
    if size > MAX_DEFINITION_BYTES:
        problems.append(
            Diagnostic(
                "DEFINITION_TOO_LARGE",
                f"the definition is {size:,} bytes; Step Functions accepts at most {MAX_DEFINITION_BYTES:,}",
            )
        )
    try:
        parsed = json.loads(definition)
    except ValueError as exc:
        return [*problems, Diagnostic("INVALID_JSON_DESCRIPTION", f"the definition is not JSON: {exc}")]
    for where, states in _scopes(parsed, ""):
        start = _machine_at(parsed, where).get("StartAt")
        if start not in states:
            problems.append(
                Diagnostic("MISSING_TRANSITION_TARGET", f"StartAt {start!r} is not a state", f"{where}/StartAt")
            )
        for name, state in states.items():
            location = f"{where}/States/{name}"
            error = state.get("Error")
            if state.get("Type") == "Fail" and isinstance(error, str) and error.startswith(RESERVED_PREFIX):
                problems.append(
                    Diagnostic(
                        "SCHEMA_VALIDATION_FAILED",
                        f"Fail state error {error!r}: custom error names must not start with {RESERVED_PREFIX!r}",
                        f"{location}/Error",
                    )
                )
            for field, target in _transitions(state):
                if target not in states:
                    problems.append(
                        Diagnostic(
                            "MISSING_TRANSITION_TARGET", f"{field} {target!r} is not a state", f"{location}/{field}"
                        )
                    )
    return problems


def _scopes(machine: Any, where: str) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """Every ``States`` object of ``machine`` with its location, nested Parallel branches and Map processors
    included (a transition may only target a state of its own scope)."""
    if not isinstance(machine, dict) or not isinstance(machine.get("States"), dict):
        return
    states = {name: state for name, state in machine["States"].items() if isinstance(state, dict)}
    yield where, states
    for name, state in states.items():
        location = f"{where}/States/{name}"
        for i, branch in enumerate(state.get("Branches") or []):
            yield from _scopes(branch, f"{location}/Branches/{i}")
        for key in ("Iterator", "ItemProcessor"):
            yield from _scopes(state.get(key), f"{location}/{key}")


def _machine_at(machine: dict[str, Any], where: str) -> dict[str, Any]:
    node: Any = machine
    for part in filter(None, where.split("/")):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return dict(node)


def _transitions(state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "Next" in state:
        yield "Next", state["Next"]
    if "Default" in state:
        yield "Default", state["Default"]
    for i, choice in enumerate(state.get("Choices") or []):
        if isinstance(choice, dict) and "Next" in choice:
            yield f"Choices/{i}/Next", choice["Next"]
    for i, catcher in enumerate(state.get("Catch") or []):
        if isinstance(catcher, dict) and "Next" in catcher:
            yield f"Catch/{i}/Next", catcher["Next"]


_MISSING = object()


class _Patches:
    """Attributes replaced on moto's classes, restored in reverse order."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, value: Any) -> Any:
        """Set ``owner.name`` (a class attribute, possibly new); the attribute it replaces (or ``_MISSING``)."""
        original = owner.__dict__.get(name, _MISSING)
        self._saved.append((owner, name, original))
        setattr(owner, name, value)
        return original

    def undo(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def install() -> Callable[[], None]:
    """Enforce the rules in moto's Step Functions; returns the undo."""
    patches = _Patches()
    try:
        _enforce_payload_limits(patches)
        _limit_execution_input(patches)
        _make_terminal_errors_uncatchable(patches)
        _enforce_definition_rules(patches)
        _cap_state_machines(patches)
        _cap_history_events(patches)
        _cap_inline_map_concurrency(patches)
        _serve_validate_definition(patches)
        _limit_item_size_on_set_add(patches)
    except BaseException:
        patches.undo()
        raise
    return patches.undo


# ---------------------------------------------------------------------------------------------- failures


def _failure(env: Any, error: str, cause: str) -> Exception:
    """A moto failure event exception carrying ``error`` and ``cause`` (a state failure, as AWS records it)."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    kinds = {
        "States.DataLimitExceeded": StatesErrorNameType.StatesStatesDataLimitExceeded,
        "States.Runtime": StatesErrorNameType.StatesRuntime,
    }
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=kinds[error]),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(error=error, cause=cause)),  # type: ignore[typeddict-item]
        )
    )


def _too_large() -> Exception:
    """AWS's API model caps the definition field: a ValidationException before any parsing."""
    from moto.stepfunctions.exceptions import ValidationException

    return ValidationException(
        "1 validation error detected: Value at 'definition' failed to satisfy constraint: "
        f"Member must have length less than or equal to {MAX_DEFINITION_BYTES}"
    )


def _check_size(env: Any, value: Any, what: str) -> None:
    size = payload_bytes(value)
    if size > MAX_PAYLOAD_BYTES:
        state = getattr(env, "next_state_name", None) or "?"
        raise _failure(
            env,
            "States.DataLimitExceeded",
            f"The {what} of state '{state}' is {size:,} bytes, over the maximum of {MAX_PAYLOAD_BYTES:,} bytes.",
        )


def _error_name(failure_event: Any) -> str | None:
    return getattr(getattr(failure_event, "error_name", None), "error_name", None)


# ---------------------------------------------------------------------------------------------- the rules


def _enforce_payload_limits(patches: _Patches) -> None:
    """moto checks a state's output and a task's result; AWS also limits the input, Parameters, and a Parallel's
    or Map's combined result (before ResultSelector can shrink it)."""
    from moto.stepfunctions.parser.asl.component.common.parargs import Parargs
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel import StateParallel
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original_input = CommonStateField.__dict__["_eval_state_input"]

    def eval_state_input(state: Any, env: Any) -> None:
        _check_history(env)
        _check_size(env, env.states.get_input(), "input")
        original_input(state, env)

    patches.replace(CommonStateField, "_eval_state_input", eval_state_input)

    original_parargs = Parargs.__dict__["_eval_body"]

    def parargs_eval_body(parargs: Any, env: Any) -> None:
        original_parargs(parargs, env)
        _check_size(env, env.stack[-1], "Parameters")

    patches.replace(Parargs, "_eval_body", parargs_eval_body)

    for cls, what in ((StateParallel, "combined branch output"), (StateMap, "combined iteration output")):
        original_execution = cls.__dict__["_eval_execution"]

        def eval_execution(state: Any, env: Any, _original: Any = original_execution, _what: str = what) -> None:
            _original(state, env)
            _check_size(env, env.stack[-1], _what)

        patches.replace(cls, "_eval_execution", eval_execution)


def _limit_execution_input(patches: _Patches) -> None:
    """StartExecution refuses an input over 256 KiB (a length constraint of AWS's API model); moto starts it."""
    from moto.stepfunctions.exceptions import ValidationException
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_start = StepFunctionsParserBackend.__dict__["start_execution"]

    def start_execution(backend: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        execution_input = kwargs.get("execution_input", args[1] if len(args) > 1 else None)
        if isinstance(execution_input, str) and payload_bytes(execution_input) > MAX_PAYLOAD_BYTES:
            raise ValidationException(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                f"Member must have length less than or equal to {MAX_PAYLOAD_BYTES}"
            )
        return original_start(backend, state_machine_arn, *args, **kwargs)

    patches.replace(StepFunctionsParserBackend, "start_execution", start_execution)


def _make_terminal_errors_uncatchable(patches: _Patches) -> None:
    """AWS never catches or retries ``States.DataLimitExceeded`` and ``States.Runtime``; moto's ``States.ALL``
    matches both."""
    from moto.stepfunctions.parser.asl.component.common.catch.catch_outcome import CatchOutcome
    from moto.stepfunctions.parser.asl.component.common.retry.retry_outcome import RetryOutcome
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState

    original_catch = ExecutionState.__dict__["_handle_catch"]
    original_retry = ExecutionState.__dict__["_handle_retry"]

    def handle_catch(state: Any, env: Any, failure_event: Any) -> None:
        if _error_name(failure_event) in UNCATCHABLE_ERRORS:
            env.stack.append(failure_event)
            env.stack.append(CatchOutcome.NotCaught)
            return
        original_catch(state, env, failure_event)

    def handle_retry(state: Any, env: Any, failure_event: Any) -> Any:
        if _error_name(failure_event) in UNCATCHABLE_ERRORS:
            return RetryOutcome.CannotRetry
        return original_retry(state, env, failure_event)

    patches.replace(ExecutionState, "_handle_catch", handle_catch)
    patches.replace(ExecutionState, "_handle_retry", handle_retry)


def _enforce_definition_rules(patches: _Patches) -> None:
    """CreateStateMachine and UpdateStateMachine refuse what AWS refuses (``definition_diagnostics``). (A Fail
    state raising a reserved name at run time already fails the execution with ``States.Runtime`` in moto.)"""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import InvalidDefinition as MotoInvalidDefinition
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    class InvalidDefinition(AWSError):
        """AWS's error for a definition it cannot accept (moto's own answers with an empty error code)."""

        TYPE = "InvalidDefinition"
        STATUS = 400

    original_validate = StepFunctionsParserBackend.__dict__["_validate_definition"].__func__

    def validate_definition(definition: str) -> None:
        problems = definition_diagnostics(definition)
        if any(problem.code == "DEFINITION_TOO_LARGE" for problem in problems):
            raise _too_large()
        if problems:
            raise InvalidDefinition("; ".join(f"{p.message} at {p.location or '/'}" for p in problems))
        try:
            original_validate(definition)
        except MotoInvalidDefinition as exc:
            raise InvalidDefinition(str(exc.message)) from exc

    patches.replace(StepFunctionsParserBackend, "_validate_definition", staticmethod(validate_definition))


def _cap_state_machines(patches: _Patches) -> None:
    """CreateStateMachine refuses a new state machine once the account and Region hold ``MAX_STATE_MACHINES``
    (creating one that exists with the same name is answered with it, as before)."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    class StateMachineLimitExceeded(AWSError):
        TYPE = "StateMachineLimitExceeded"
        STATUS = 400

    original = StepFunctionsParserBackend.__dict__["create_state_machine"]

    def create_state_machine(backend: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        taken = any(machine.name == name for machine in backend.state_machines)
        if not taken and len(backend.state_machines) >= MAX_STATE_MACHINES:
            raise StateMachineLimitExceeded(
                "The maximum number of state machines has been reached. Existing state machines must be deleted"
                " before a new state machine can be created."
            )
        return original(backend, name, *args, **kwargs)

    patches.replace(StepFunctionsParserBackend, "create_state_machine", create_state_machine)


def _limit_item_size_on_set_add(patches: _Patches) -> None:
    """An ``ADD`` of set members that would take the item over moto's own item size limit (the one it applies to
    ``SET`` and ``PutItem``) fails with ``ItemSizeTooLarge`` before anything is added, which UpdateItem answers as
    AWS does (``ValidationException``: "Item size to update has exceeded the maximum allowed size")."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge, ProvidedKeyDoesNotExist
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing.executors import AddExecutor

    original = AddExecutor.__dict__["execute"]

    def execute(executor: Any, item: Any) -> None:
        value = executor.get_action_value()
        if isinstance(value, DynamoType) and value.is_set():
            try:
                current = executor.get_item_at_end_of_path(item)
            except ProvidedKeyDoesNotExist:
                current = None
            present = current.value if isinstance(current, DynamoType) and current.is_set() else []
            grown = _set_bytes(value.type, [v for v in value.value if v not in present])
            if grown and _item_bytes(item) + grown > MAX_ITEM_BYTES:
                raise ItemSizeTooLarge
        original(executor, item)

    def _item_bytes(item: Any) -> int:
        """moto's ``Item.size()``, with sets measured in one pass (moto makes an object per member: a foreach
        counting 10,000 items in a set would spend seconds here)."""
        return sum(
            len(name.encode()) + (_set_bytes(attr.type, attr.value) if attr.is_set() else attr.size())
            for name, attr in item.attrs.items()
        )

    patches.replace(AddExecutor, "execute", execute)


def _set_bytes(kind: str, members: list[Any]) -> int:
    """The bytes of a set's members as moto counts them (a string's UTF-8, a number's digits, a binary's bytes)."""
    if kind == "SS":
        text = "".join(members)
        return len(text) if text.isascii() else len(text.encode())
    if kind == "NS":
        return sum(len(str(member)) for member in members)
    return sum(len(member) for member in members)


def _cap_history_events(patches: _Patches) -> None:
    """AWS fails an execution whose history reaches 25,000 events. Once an execution's history holds 24,999,
    further events are not recorded (except the one that ends it), the next state to begin raises
    ``States.Runtime`` (uncatchable), and the execution fails with that error and a cause naming the limit,
    its ExecutionFailed the 25,000th event. (Raising from moto's event writer itself would strand Map workers.)

    A distributed Map's children are child executions with a history each in AWS; moto gives all the children
    of a map run one event list, which is not capped (a child, one item or batch, is far from the cap)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    original_add = EventManager.__dict__["add_event"]
    original_map_run = DistributedIterationComponent.__dict__["_map_run"]
    original_set_error = Environment.__dict__["set_error"]

    def map_run(component: Any, env: Any, eval_input: Any) -> None:
        env.event_manager.strict_children_of_map_run = True
        original_map_run(component, env, eval_input)

    def add_event(manager: Any, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> int:
        kind = str(getattr(event_type, "value", event_type))
        if (
            kind not in TERMINAL_EVENTS
            and not getattr(manager, "strict_children_of_map_run", False)
            and len(manager._history_event_list) >= MAX_HISTORY_EVENTS - 1
        ):
            manager.strict_history_full = True
            return len(manager._history_event_list)
        return int(original_add(manager, context, event_type, *args, **kwargs))

    def set_error(env: Any, error: Any) -> None:
        if getattr(env.event_manager, "strict_history_full", False):
            error = {"error": "States.Runtime", "cause": _history_full_cause()}
        original_set_error(env, error)

    patches.replace(EventManager, "add_event", add_event)
    patches.replace(DistributedIterationComponent, "_map_run", map_run)
    patches.replace(Environment, "set_error", set_error)


def _history_full_cause() -> str:
    return f"The execution reached the maximum of {MAX_HISTORY_EVENTS:,} events in its history."


def _check_history(env: Any) -> None:
    if getattr(env.event_manager, "strict_history_full", False):
        raise _failure(env, "States.Runtime", _history_full_cause())


def _cap_inline_map_concurrency(patches: _Patches) -> None:
    """An inline Map runs at most 40 iterations at once in AWS, whatever its MaxConcurrency (0 = no limit);
    moto starts one thread per item."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.inline_iteration_component import (
        InlineIterationComponent,
    )

    original_body = InlineIterationComponent.__dict__["_eval_body"]

    def eval_body(component: Any, env: Any) -> None:
        eval_input = env.stack[-1]
        wanted = eval_input.max_concurrency
        if wanted == 0 or wanted > MAX_INLINE_MAP_CONCURRENCY:
            eval_input.max_concurrency = MAX_INLINE_MAP_CONCURRENCY
        if eval_input.max_concurrency > len(eval_input.input_items):
            eval_input.max_concurrency = max(1, len(eval_input.input_items))
        original_body(component, env)

    patches.replace(InlineIterationComponent, "_eval_body", eval_body)


def _serve_validate_definition(patches: _Patches) -> None:
    """``ValidateStateMachineDefinition``, which moto does not implement: moto's own parser (what
    CreateStateMachine would refuse) plus ``definition_diagnostics``."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(response: Any) -> Any:
        definition = response._get_param("definition") or ""
        max_results = int(response._get_param("maxResults") or 0) or 100
        if len(definition.encode()) > MAX_DEFINITION_BYTES:
            raise _too_large()
        problems = definition_diagnostics(definition) if definition else [Diagnostic("MISSING_DESCRIPTION", "")]
        if not problems:
            try:
                AmazonStateLanguageParser.parse(definition)
            except Exception as exc:  # moto's parser raises whatever its visitors raise
                problems.append(Diagnostic("SCHEMA_VALIDATION_FAILED", f"{type(exc).__name__}: {exc}"))
        return ActionResult(
            {
                "result": "FAIL" if problems else "OK",
                "diagnostics": [p.to_dict() for p in problems[:max_results]],
                "truncated": len(problems) > max_results,
            }
        )

    patches.replace(StepFunctionResponse, "validate_state_machine_definition", validate_state_machine_definition)
