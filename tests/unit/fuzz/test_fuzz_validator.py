"""The graph validator under hypothesis-generated specs: it accepts or rejects with ``SpecError``, nothing else.

Specs are built from parts that are mostly valid (so many are accepted) with mistakes mixed in: unknown
and duplicate ids, unknown tools, params of the wrong type, references to missing or downstream nodes,
malformed references, conditions inside and outside the grammar, cycles with and without a bound, odd
retry and foreach values, and now and then shapes that are not specs at all. An accepted spec must
compile to a definition that passes the structural check (``CompileError`` would be a compiler bug).
The functional test ``tests/functional/test_fuzz_runs.py`` runs a sample of accepted specs in moto.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statemachine.compiler import check_definition, compile_graph
from statemachine.errors import SpecError
from tests.unit.fuzz.specs import EXECUTOR_ARN, SEEN, specs

validation = pytest.importorskip("statemachine.validation")
registry = pytest.importorskip("functions.executor.tools.registry")

EXAMPLES = 400


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(specs(), st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=4)))
def test_the_validator_accepts_and_compiles_or_rejects_with_spec_error(raw: dict[str, Any]) -> None:
    # GIVEN a generated spec (mostly plausible, sometimes broken, sometimes not a spec at all)
    SEEN["cases"] += 1
    # WHEN it is validated
    try:
        spec = validation.validate(raw, registry)
    except SpecError as exc:
        # THEN a rejection is a SpecError whose details say where (the API's 422 body)
        SEEN["rejected"] += 1
        assert exc.details, f"SpecError without details: {exc}"
        for detail in exc.details:
            assert isinstance(detail.get("message"), str) and detail["message"], detail
            assert "loc" in detail, detail
        return
    # THEN an accepted spec compiles, and the definition passes the structural check
    definition = compile_graph(spec, executor_arn=EXECUTOR_ARN)
    check_definition(definition)
    assert set(definition["States"]), definition
    SEEN["accepted"] += 1
