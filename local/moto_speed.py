"""moto made cheaper where stepgraph's runs spend its time, without changing what it accepts, refuses or writes.

**DynamoDB's** ``UpdateItem``.

Every ``UpdateItem`` costs moto two parses of its update expression (one in the request handler, one in the
backend), a ``deepcopy`` of the parsed tree for each validation (two when the update creates the item), and
an action-count check that re-walks the whole subtree of every node of the tree (quadratic in the expression).
stepgraph's writes repeat a handful of expressions, so on this machine a node's ``UpdateItem`` took longer than
the whole Lambda invoke the raw interpreter makes per state (bench/live.py). Here:

- a parse is kept per expression text (the tree is only read, or copied before it is changed);
- such a kept tree is copied by unpickling its pickled form (same objects as ``deepcopy``, several times faster);
- the action-count and overlapping-path checks run once, on the root, whose clauses and paths include those
  of every node below it: when the root passes, every node would have; when it does not, moto's own walk
  runs and refuses the expression exactly as before. They read only the expression and its names, so a pass
  is kept per expression text and names;
- a condition expression's parse is kept per text, names and the values it refers to (with what the parse
  notes as found, for moto's unused-names check), and the kept condition is evaluated again: it only reads
  the item;
- the validators' tree walk looks up which processor (if any) takes a node, and whether the walker has a hook
  before each child, once per node class and walker, where moto rebuilds the processor map and runs
  abstract-class checks for every node it visits;
- an update that creates its item is validated once, not twice, when its expression names no key attribute:
  moto validates it on an empty item, creates the item (its key only), then validates it again on that, which
  gives the same tree.

**Step Functions' executions.** moto's interpreter parses the state machine's definition again for every
execution (an ANTLR parse and the build of its components: about 180 ms for a stepgraph chain of 20 nodes on
this machine, more than the executions' Lambda calls together). The components built from a definition are
kept pickled, per definition text, from the parse that validated the definition at CreateStateMachine (or the
first execution's); each execution unpickles its own copy (about 1 ms), so executions share no component, as
with moto's own parse (components keep a lazily drawn heap key, a ``Pass`` state its ``Result`` object).

**The heap.** The local cloud's process holds some 300,000 long-lived objects by the time it starts (botocore's
service models, moto's modules and backends); Python's full garbage collection walks all of them (250-450 ms on
this machine), about once every five runs of a 20-node chain. They are frozen out of collections while the cloud
runs (``gc.freeze``) and thawed when it stops, so whatever a stopped cloud leaves behind is collected as usual.

**JSONPath.** moto's interpreter parses a path (``$.Payload``, ``$$.State.RetryCount``) with jsonpath-ng every
time a state reads one, building a new parser each time (about 0.4 ms a path on this machine); the parsed path
is kept per text (``find`` only reads it).

**State data.** moto's interpreter deep-copies a state's input, its result and the value of every path it
reads (``copy.deepcopy``), several times per state; a 10,000-item ``foreach`` moves large documents, and those
copies were most of its interpreter's CPU. They are made by a pickle round trip, which builds the same objects
four times faster on a large document (anything pickle refuses is deep-copied as before).

**Every request.** moto lists the methods of the service's response class (``inspect.getmembers``) on every
request, to check that the action is one of them; the list is kept per class.

**DynamoDB's answers.** moto walks every attribute of every item it returns through the ten-member
``AttributeValue`` shape (a 3,000-item ``Query`` page took 4 s, holding the local cloud's DynamoDB lock). The
values are already in their wire form (``{"S": "..."}``), so one without binary data is copied as it is.

Nothing here is visible to a caller: same results, same errors, same stream records, same histories, same
response bodies.
"""

from __future__ import annotations

import copy
import gc
import json
import pickle
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_KEPT_EXPRESSIONS = 512
MAX_KEPT_DEFINITIONS = 128
_VALUE_REFERENCE = re.compile(r":[A-Za-z0-9_]+")
_EXPRESSION = "_stepgraph_expression"


def install() -> Callable[[], None]:
    """Patch moto's update-expression parsing and validation, its per-execution definition parse, its JSONPath
    parses, its per-request method listing, its AttributeValue serializing and its state data copies, and
    freeze the heap out of garbage collections; returns the undo."""
    undo_updates = _install_update_item()
    undo_definitions = _install_definition_cache()
    undo_names = _install_action_names()
    undo_paths = _install_json_paths()
    undo_serializer = _install_attribute_values()
    undo_copies = _install_data_copies()
    gc.freeze()

    def undo() -> None:
        gc.unfreeze()
        undo_copies()
        undo_paths()
        undo_serializer()
        undo_names()
        undo_definitions()
        undo_updates()

    return undo


def _install_json_paths() -> Callable[[], None]:
    """Keep each JSONPath moto's interpreter reads a value with, parsed (it parses it again for every read)."""
    return _keep_results("moto.stepfunctions.parser.asl.utils.json_path", "parse", limit=MAX_KEPT_EXPRESSIONS)


# moto's interpreter modules that deep-copy state data (inputs, results, the value stack, history event details).
_DATA_COPYING_MODULES = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.eval.event.event_manager",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map",
    "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service",
)
_ATOMIC = frozenset({str, int, float, bool, type(None)})


def copy_data(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy`` of JSON-shaped data by a pickle round trip: the same objects (shared ones stay shared),
    several times faster on a large document; anything pickle cannot take is deep-copied as before."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict or kind is list:
        try:
            return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
        except Exception:  # a value pickle refuses: deep-copied below
            pass
    return copy.deepcopy(value, memo)


def _install_data_copies() -> Callable[[], None]:
    """Let moto's interpreter copy state data with ``copy_data``: it deep-copies a state's input, its result and
    every path's value several times per state, and a 10,000-item ``foreach`` moves large documents."""
    import importlib
    import types

    fast = types.SimpleNamespace(deepcopy=copy_data)
    modules = [importlib.import_module(name) for name in _DATA_COPYING_MODULES]
    for module in modules:
        module.copy = fast  # type: ignore[attr-defined]

    def undo() -> None:
        for module in modules:
            module.copy = copy  # type: ignore[attr-defined]

    return undo


def _install_action_names() -> Callable[[], None]:
    """Keep the method names of each moto response class (moto lists them again for every request)."""
    return _keep_results("moto.core.responses", "method_names_from_class", kept_as=frozenset)


def _keep_results(
    module_name: str, function_name: str, *, limit: int | None = None, kept_as: Callable[[Any], Any] | None = None
) -> Callable[[], None]:
    """Replace a module's one-argument function with one that keeps its result per argument (the first ``limit``
    arguments; ``kept_as`` converts a result before it is kept); returns the undo."""
    import importlib

    module: Any = importlib.import_module(module_name)
    original = getattr(module, function_name)
    kept: dict[Any, Any] = {}

    def keeping(argument: Any) -> Any:
        found = kept.get(argument)
        if found is None:
            found = original(argument)
            if kept_as is not None:
                found = kept_as(found)
            if limit is None or len(kept) < limit:
                kept[argument] = found
        return found

    setattr(module, function_name, keeping)

    def undo() -> None:
        setattr(module, function_name, original)

    return undo


def _install_definition_cache() -> Callable[[], None]:
    """Keep the components parsed from a definition (pickled) and give each execution its own copy."""
    import importlib

    parsing: Any = importlib.import_module("moto.stepfunctions.parser.asl.parse.asl_parser")
    workers: Any = importlib.import_module("moto.stepfunctions.parser.backend.execution_worker")
    parser, worker = parsing.AmazonStateLanguageParser, workers.ExecutionWorker
    original_parse = parser.__dict__["parse"]
    original_entrypoint = worker.__dict__["_get_evaluation_entrypoint"]
    lock = threading.Lock()
    kept: OrderedDict[str, bytes] = OrderedDict()

    def keep(definition: str, program: Any) -> None:
        try:
            frozen = pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a component pickle cannot copy: such a definition is parsed every time
            return
        with lock:
            kept[definition] = frozen
            while len(kept) > MAX_KEPT_DEFINITIONS:
                kept.popitem(last=False)

    def parse(definition: str) -> tuple[Any, Any]:
        program, tree = original_parse.__func__(definition)
        if isinstance(definition, str):
            keep(definition, program)  # pickled before anything evaluates it
        return program, tree

    def entrypoint(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            frozen = kept.get(definition) if isinstance(definition, str) else None
            if frozen is not None:
                kept.move_to_end(definition)
        if frozen is None:
            return original_entrypoint(self)
        return pickle.loads(frozen)

    parser.parse = staticmethod(parse)
    worker._get_evaluation_entrypoint = entrypoint

    def undo() -> None:
        parser.parse = original_parse
        worker._get_evaluation_entrypoint = original_entrypoint

    return undo


def _install_update_item() -> Callable[[], None]:
    """Patch moto's update-expression parsing and validation; returns the undo."""
    import importlib

    # moto's parsing modules are untyped (``# type: ignore``): reached as Any.
    validators: Any = importlib.import_module("moto.dynamodb.parsing.validators")
    ast_nodes: Any = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
    expressions: Any = importlib.import_module("moto.dynamodb.parsing.expressions")
    comparisons: Any = importlib.import_module("moto.dynamodb.comparisons")
    DepthFirstTraverser, Node, UpdateExpression = (
        ast_nodes.DepthFirstTraverser,
        ast_nodes.Node,
        ast_nodes.UpdateExpression,
    )
    UpdateExpressionParser = expressions.UpdateExpressionParser

    lock = threading.Lock()
    kept: OrderedDict[str, tuple[Any, bytes, str]] = OrderedDict()
    pickled: dict[int, tuple[Any, bytes, str]] = {}
    passed: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    original_make = UpdateExpressionParser.__dict__["make"]
    original_deepcopy = validators.deepcopy
    checkers = {
        validators.ActionCountValidator: "verify_action_counts",
        validators.OverlappingPathsValidator: "check_for_overlapping_paths",
    }
    own = {checker: checker.__dict__.get("traverse") for checker in checkers}

    def make(cls: Any, expression: str) -> Any:
        with lock:
            found = kept.get(expression)
            if found is not None:
                kept.move_to_end(expression)
                return found[0]
        tree = original_make.__func__(cls, expression)
        entry = (tree, pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL), expression)
        with lock:
            kept[expression] = entry
            pickled[id(tree)] = entry
            while len(kept) > MAX_KEPT_EXPRESSIONS:
                old = kept.popitem(last=False)[1][0]
                pickled.pop(id(old), None)
        return tree

    parser_class = comparisons.ConditionExpressionParser
    original_parse = parser_class.__dict__["parse"]
    conditions: OrderedDict[tuple[Any, ...], tuple[Any, list[str], list[str]]] = OrderedDict()

    def condition_key(parser: Any) -> tuple[Any, ...] | None:
        text = parser.condition_expression
        if not text:
            return None
        values = parser.expression_attribute_values or {}
        try:
            used = tuple(
                (name, json.dumps(values.get(name), sort_keys=True))
                for name in sorted(set(_VALUE_REFERENCE.findall(text)))
            )
            names = tuple(sorted((parser.expression_attribute_names or {}).items()))
        except (TypeError, ValueError):
            return None
        return (text, names, used)

    def parse_condition(parser: Any) -> Any:
        key = condition_key(parser)
        if key is not None:
            with lock:
                found = conditions.get(key)
                if found is not None:
                    conditions.move_to_end(key)
            if found is not None:
                parser.expr_attr_names_found.extend(found[1])
                parser.expr_attr_values_found.extend(found[2])
                return found[0]
        names_before, values_before = len(parser.expr_attr_names_found), len(parser.expr_attr_values_found)
        condition = original_parse(parser)
        if key is not None:
            with lock:
                conditions[key] = (
                    condition,
                    list(parser.expr_attr_names_found[names_before:]),
                    list(parser.expr_attr_values_found[values_before:]),
                )
                while len(conditions) > MAX_KEPT_EXPRESSIONS:
                    conditions.popitem(last=False)
        return condition

    def deepcopy(value: Any, memo: Any = None) -> Any:
        entry = pickled.get(id(value)) if memo is None else None
        if entry is not None and entry[0] is value:
            tree = pickle.loads(entry[1])
            tree.__dict__[_EXPRESSION] = entry[2]  # the root checks' outcome is kept per expression text
            return tree
        return copy.deepcopy(value, memo)

    original_walk = DepthFirstTraverser.traverse_node_recursively
    no_hook = DepthFirstTraverser.pre_processing_of_child
    not_node, unknown = object(), object()

    def walk(walker: Any, node: Any, child_id: int = -1) -> Any:
        """moto's depth-first walk, with what it looks up per node (which processor takes the node's class,
        whether the walker has a hook before each child) looked up once per walker and class."""
        state = walker.__dict__.get("_stepgraph_walk")
        if state is None:
            hook = None if type(walker).pre_processing_of_child is no_hook else walker.pre_processing_of_child
            state = walker.__dict__["_stepgraph_walk"] = ({}, hook)
        return walk_node(walker, state[0], state[1], node, child_id)

    def walk_node(walker: Any, table: dict[type, Any], hook: Any, node: Any, child_id: int) -> Any:
        kind = type(node)
        process = table.get(kind, unknown)
        if process is unknown:
            if isinstance(node, Node):
                process = next((f for k, f in walker._processing_map().items() if issubclass(kind, k)), None)
            else:
                process = not_node
            table[kind] = process
        if process is not_node:
            return node
        parent_node = node.parent
        children = node.children
        if children is not None:
            for i, child_node in enumerate(children):
                if hook is not None:
                    hook(node, i)
                walk_node(walker, table, hook, child_node, i)
        if process is not None:
            node = process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    original_traverse = DepthFirstTraverser.traverse

    def check_at_root(check: str) -> Callable[[Any, Any], Any]:
        def traverse(checker: Any, node: Any) -> Any:
            if isinstance(node, UpdateExpression):
                text = node.__dict__.get(_EXPRESSION)
                names = getattr(checker, "expression_attribute_names", None) or {}
                key = None if text is None else (check, text, tuple(sorted(names.items())))
                if key is not None and key in passed:
                    return node
                try:
                    getattr(checker, check)(node)
                except Exception:
                    return original_traverse(checker, node)  # moto's walk: its own error, from where it finds it
                if key is not None and len(passed) < 4 * MAX_KEPT_EXPRESSIONS:
                    with lock:
                        passed.add(key)
            return node

        return traverse

    models: Any = importlib.import_module("moto.dynamodb.models")
    original_validator = models.UpdateExpressionValidator
    pending = threading.local()

    def reads_no_key(expression: Any, names: Any, table: Any) -> bool:
        """The kept expression ``expression`` names none of the table's key attributes (text or names)."""
        entry = pickled.get(id(expression))
        if entry is None or entry[0] is not expression:
            return False
        keys = {k for k in (table.hash_key_attr, table.range_key_attr) if k}
        used = set((names or {}).values())
        return not any(k in used or re.search(rf"(?<![#:\w]){re.escape(k)}(?!\w)", entry[2]) for k in keys)

    class CreatingValidator(original_validator):  # type: ignore[misc,valid-type]
        """moto validates an update that creates its item twice: on an empty item (so that an invalid update
        creates nothing), then on the item just created, which holds only its key. When the expression names
        no key attribute both give the same tree, so the second takes the first's."""

        def __init__(
            self,
            expression: Any,
            expression_attribute_names: Any,
            expression_attribute_values: Any,
            item: Any,
            table: Any,
        ) -> None:
            first, pending.first = getattr(pending, "first", None), None
            self._taken: Any = None
            self._first: Any = None
            if (
                first is not None
                and first[0] is expression
                and first[1] is expression_attribute_names
                and first[2] is expression_attribute_values
                and first[4] is table
                and first[3].hash_key == item.hash_key
                and first[3].range_key == item.range_key
                and set(item.attrs) <= {table.hash_key_attr, table.range_key_attr}
            ):
                self._taken = first[5]
                return
            super().__init__(
                expression,
                expression_attribute_names=expression_attribute_names,
                expression_attribute_values=expression_attribute_values,
                item=item,
                table=table,
            )
            if not item.attrs and reads_no_key(expression, expression_attribute_names, table):
                self._first = (expression, expression_attribute_names, expression_attribute_values, item, table)

        def validate(self) -> Any:
            if self._taken is not None:
                return self._taken
            validated = super().validate()
            if self._first is not None:
                pending.first = (*self._first, validated)
            return validated

    UpdateExpressionParser.make = classmethod(make)
    validators.deepcopy = deepcopy
    models.UpdateExpressionValidator = CreatingValidator
    for checker, check in checkers.items():
        checker.traverse = check_at_root(check)
    DepthFirstTraverser.traverse_node_recursively = walk
    parser_class.parse = parse_condition

    def undo() -> None:
        models.UpdateExpressionValidator = original_validator
        parser_class.parse = original_parse
        DepthFirstTraverser.traverse_node_recursively = original_walk
        UpdateExpressionParser.make = original_make
        validators.deepcopy = original_deepcopy
        for checker, traverse in own.items():
            if traverse is None:
                del checker.traverse
            else:
                checker.traverse = traverse

    return undo


# AttributeValue members whose wire form is the value itself (strings, numbers as strings, booleans, lists of them).
_PLAIN = frozenset({"S", "N", "BOOL", "NULL", "SS", "NS"})


def wire_attribute_value(value: Any) -> Any:
    """A copy of an ``AttributeValue`` already in wire form, or None where moto's own walk must run (binary
    values are base64-encoded by it; anything not of the expected shape is left to it)."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind in _PLAIN:
        if isinstance(inner, list):
            return {kind: list(inner)} if all(isinstance(v, str) for v in inner) else None
        return {kind: inner} if isinstance(inner, str | bool) else None
    if kind == "M" and isinstance(inner, dict):
        members = {}
        for name, member in inner.items():
            wired = wire_attribute_value(member)
            if wired is None:
                return None
            members[name] = wired
        return {"M": members}
    if kind == "L" and isinstance(inner, list):
        elements = []
        for element in inner:
            wired = wire_attribute_value(element)
            if wired is None:
                return None
            elements.append(wired)
        return {"L": elements}
    return None


def _install_attribute_values() -> Callable[[], None]:
    """Serialize DynamoDB's ``AttributeValue`` structures by copying their wire form."""
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer.__dict__["_serialize_type_structure"]

    def serialize_structure(serializer: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue":
            wired = wire_attribute_value(value)
            if wired is not None:
                serializer._default_serialize(serialized, wired, shape, key)
                return
        original(serializer, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign,assignment]

    def undo() -> None:
        BaseJSONSerializer._serialize_type_structure = original  # type: ignore[method-assign]

    return undo
