"""JSON Schemas from callers: what is taken, and validation whose patterns are matched in linear time.

``jsonschema`` matches ``pattern``, ``patternProperties`` (and the ``additionalProperties`` beside them) with
Python's backtracking ``re``: a pattern such as ``^(a+)+$`` takes exponential time on ``"aaaa…!"``, and the
API or the executor would spin until its Lambda timeout. Schemas come from callers (a registered tool's
``params_schema``, a ``human.input`` or ``llm.converse`` ``schema``), so their patterns are matched here by RE2,
which never backtracks. RE2 takes the usual syntax (classes, quantifiers, anchors, ``\\p{L}``, ``(?i)``) but
not lookarounds or backreferences; ``\\uXXXX`` escapes are read as the character. It also reads ``$``
(the end of the text, not the place before a final newline) and ``\\d``/``\\w`` (ASCII) as ECMA-262, JSON
Schema's regex dialect, does: ``^[a-z]+$`` no longer takes ``"abc\\n"``.

A schema is checked when it is taken (:func:`check`): valid against its meta-schema, patterns RE2 can take,
no reference outside it (nothing is ever fetched), no reference to itself without end. :func:`errors`
applies one; a schema stored before these checks that cannot be applied gives an error of the value, never
an exception.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jsonschema.protocols import Validator

_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})")
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
"""Keywords whose values are data, not schemas: a ``pattern`` key inside them is not a pattern."""


class PatternError(ValueError):
    """A pattern RE2 cannot take (a lookaround, a backreference, a syntax error)."""


@lru_cache(maxsize=512)
def compiled(pattern: str) -> Any:
    """The RE2 program for a JSON Schema ``pattern``; :class:`PatternError` when RE2 cannot take it."""
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(_UNICODE_ESCAPE.sub(r"\1\\x{\2}", pattern), options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(
            f"pattern {pattern!r} is not one RE2 takes (patterns are matched in linear time: no lookarounds or "
            f"backreferences): {reason}"
        ) from None


def check(schema: dict[str, Any], draft: Any = None) -> None:
    """Raise ``ValueError`` naming why ``schema`` cannot be taken: not a valid JSON Schema of its draft
    (``draft``, else its own ``$schema``, else 2020-12), or one of :func:`intake_problems`."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import SchemaError

    cls = draft or validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
    except RecursionError:  # the meta-schema reads each pattern with Python's re, whose parser recurses
        raise ValueError("a pattern of the schema nests too deeply to be read (thousands of groups)") from None
    problems = intake_problems(schema, cls)
    if problems:
        raise ValueError(problems[0])


def intake_problems(schema: dict[str, Any], draft: Any = None) -> list[str]:
    """Why ``schema`` (valid against its meta-schema) cannot be applied here: patterns RE2 cannot take,
    references outside it or to nothing in it, a reference to itself without end. Empty when it can."""
    from referencing.exceptions import Unresolvable

    problems = pattern_problems(schema)
    problems += [
        f"$ref {ref!r} at {where or '(root)'} points outside the schema; only references within it (#/...) "
        "are followed (no schema is fetched)"
        for where, ref in outside_refs(schema)
    ]
    problems += _dangling_refs(schema, draft)
    if not problems:
        try:
            list(validator(schema, draft).iter_errors(None))
        except RecursionError:
            problems.append("the schema refers to itself without end (a $ref cycle that reads no part of the value)")
        except Unresolvable as exc:
            problems.append(f"a $ref of the schema does not resolve: {exc}")
    return problems


def _dangling_refs(schema: dict[str, Any], draft: Any) -> list[str]:
    """Why each in-schema ``$ref`` that points at nothing does not resolve (none are looked for when a
    subschema sets its own ``$id``: its references are read against that)."""
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import specification_with

    inside = [(where, ref) for where, ref in _refs(schema) if ref.startswith("#")]
    if not inside or any(where and "$id" in node for node, where in _subschemas(schema)):
        return []
    cls = draft or validators.validator_for(schema, default=Draft202012Validator)
    dialect = specification_with(cls.META_SCHEMA.get("$schema") or cls.META_SCHEMA.get("$id", ""))
    resolver = Registry().resolver_with_root(dialect.create_resource(schema))
    problems = []
    for where, ref in inside:
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:
            problems.append(f"$ref {ref!r} at {where or '(root)'} points at nothing in the schema ({exc})")
    return problems


def outside_refs(schema: Any) -> list[tuple[str, str]]:
    """``(path, ref)`` of every ``$ref``/``$dynamicRef`` that does not point inside the schema itself."""
    return [(where, ref) for where, ref in _refs(schema) if not ref.startswith("#")]


def _subschemas(schema: Any) -> list[tuple[dict[str, Any], str]]:
    """Every object in ``schema`` with its path (``a/b/0``; the root's is empty), data keywords' values left out."""
    found: list[tuple[dict[str, Any], str]] = []
    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            found.append((value, where))
            stack.extend(
                (item, f"{where}/{key}" if where else str(key))
                for key, item in value.items()
                if key not in _DATA_KEYWORDS
            )
        elif isinstance(value, list):
            stack.extend((item, f"{where}/{index}") for index, item in enumerate(value))
    return found


def _refs(schema: Any) -> list[tuple[str, str]]:
    """``(path, ref)`` of every ``$ref``/``$dynamicRef`` string in ``schema``, in path order."""
    found = [
        (where, node[key])
        for node, where in _subschemas(schema)
        for key in ("$ref", "$dynamicRef")
        if isinstance(node.get(key), str)
    ]
    return sorted(found)


def errors(schema: dict[str, Any], value: Any, draft: Any = None) -> list[Any]:
    """The ``ValidationError``s of ``value`` against ``schema``; a schema that cannot be applied (a reference
    that does not resolve, one that refers to itself without end) is one error at the value's root."""
    from jsonschema.exceptions import ValidationError
    from referencing.exceptions import Unresolvable

    try:
        return list(validator(schema, draft).iter_errors(value))
    except Unresolvable as exc:
        reason = f"a reference does not resolve ({exc})"
    except RecursionError:
        reason = "it refers to itself without end"
    return [ValidationError(f"the schema cannot be applied: {reason}", instance=value)]


def pattern_problems(schema: Any) -> list[str]:
    """Why each pattern of ``schema`` cannot be matched here (empty when all can)."""
    problems: list[str] = []
    pattern_properties = unevaluated = False
    for node, where in _subschemas(schema):
        at = f"/{where}" if where else ""
        patterns = [(node["pattern"], f"{at}/pattern")] if isinstance(node.get("pattern"), str) else []
        if isinstance(node.get("patternProperties"), dict):
            pattern_properties = True
            patterns += [(key, f"{at}/patternProperties") for key in node["patternProperties"]]
        unevaluated = unevaluated or "unevaluatedProperties" in node
        for pattern, place in patterns:
            try:
                compiled(pattern)
            except PatternError as exc:
                problems.append(f"{place}: {exc}")
    if pattern_properties and unevaluated:
        problems.append(
            "unevaluatedProperties beside patternProperties is not supported: its patterns would be matched by "
            "a backtracking engine"
        )
    return problems


def validator(schema: dict[str, Any], draft: Any = None) -> Validator:
    """A validator for ``schema`` matching patterns with RE2: of ``draft`` (a jsonschema validator class), else
    of the schema's own ``$schema`` draft, else 2020-12."""
    from jsonschema import Draft202012Validator, validators

    return _linear(draft or validators.validator_for(schema, default=Draft202012Validator))(schema)


@lru_cache(maxsize=8)
def _linear(cls: Any) -> Any:
    from jsonschema import validators

    return validators.extend(
        cls,
        {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional},
    )


def _search(pattern: str, text: str) -> bool:
    return compiled(pattern).search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    try:
        matched = _search(pattern, instance)
    except PatternError as exc:
        yield ValidationError(f"the schema's {exc}")
        return
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        try:
            matching = [key for key in instance if _search(pattern, key)]
        except PatternError as exc:
            yield ValidationError(f"the schema's {exc}")
            continue
        for key in matching:
            yield from validator.descend(instance[key], subschema, path=key, schema_path=pattern)


def _additional(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """``additionalProperties`` as jsonschema has it, the properties ``patternProperties`` covers found by RE2."""
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    try:
        extras = {key for key in instance if key not in properties and not any(_search(p, key) for p in patterns)}
    except PatternError as exc:
        yield ValidationError(f"the schema's {exc}")
        return
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            unexpected = sorted(extras, key=str)
            verb = "was" if len(unexpected) == 1 else "were"
            joined = ", ".join(repr(each) for each in unexpected)
            yield ValidationError(f"Additional properties are not allowed ({joined} {verb} unexpected)")
