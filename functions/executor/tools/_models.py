"""The model catalog of ``llm.converse``: known Bedrock model ids, their prices, and JSON Schema checks.

The price table is one data file, ``llm_models.json``, which states the date its prices were taken.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["check_schema", "cost_usd", "default_model_id", "model_ids", "price_table", "schema_problem"]

_TABLE = Path(__file__).with_name("llm_models.json")


@cache
def price_table() -> dict[str, Any]:
    """The parsed price table (``as_of``, ``source``, ``default_model_id``, ``models``)."""
    return json.loads(_TABLE.read_text(encoding="utf-8"))


def model_ids() -> list[str]:
    """Model ids a graph may name: the price table's (each needs a price for the run's cost estimate), and of
    those only the ones ``STEPGRAPH_MODEL_IDS`` (the template's ``BedrockModelIds``, which IAM allows) lists."""
    known = sorted(price_table()["models"])
    allowed = {m.strip() for m in os.environ.get("STEPGRAPH_MODEL_IDS", "").split(",") if m.strip()}
    return [m for m in known if m in allowed] if allowed else known


def default_model_id() -> str:
    """``STEPGRAPH_DEFAULT_MODEL_ID`` (the template's ``DefaultModelId``), else the price table's default."""
    return os.environ.get("STEPGRAPH_DEFAULT_MODEL_ID") or str(price_table()["default_model_id"])


def cost_usd(model_id: str, input_tokens: int, output_tokens: int) -> float:
    """The on-demand price of one call by the table (0 for a model it does not list)."""
    prices = price_table()["models"].get(model_id)
    if prices is None:
        return 0.0
    return input_tokens / 1000 * prices["input_per_1k"] + output_tokens / 1000 * prices["output_per_1k"]


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the problem when ``schema`` is not a JSON Schema (draft 2020-12) stepgraph
    can apply (``statemachine.schemas.check``)."""
    from jsonschema import Draft202012Validator

    from statemachine.schemas import check

    check(schema, Draft202012Validator)


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """The first way ``value`` breaks ``schema`` (with its place), or None when it matches."""
    from jsonschema import Draft202012Validator

    from statemachine.schemas import errors

    error = next(iter(sorted(errors(schema, value, Draft202012Validator), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"
