"""``chart.bar``: a Vega-Lite v5 bar chart spec from a series (paste the output into the Vega editor to see it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "chart.bar"
DESCRIPTION = "Build a Vega-Lite v5 bar chart spec from [{label, value}], {label: value} or [[label, value]]."
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_BARS = 1000

Label = str | int | float


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label
    value: float


class Params(StrictParams):
    series: list[Point] | dict[str, float] | list[tuple[Label, float]] = Field(
        description=(
            "The bars: a list of {label, value}, a mapping label -> value, or [[label, value], ...] "
            "(text.analyze's top_words)."
        )
    )
    title: str = Field(default="", description="Chart title; empty for none.")
    x_title: str = Field(default="label", description="Title of the category axis.")
    y_title: str = Field(default="value", description="Title of the value axis.")
    sort: Literal["none", "descending", "ascending", "label"] = Field(
        default="none", description="Bar order: as given, by value (descending/ascending), or by label."
    )
    limit: int | None = Field(default=None, ge=1, le=MAX_BARS, description="Keep only the first N bars (after sort).")
    horizontal: bool = Field(default=False, description="Bars along the x axis, labels down the y axis.")
    width: int = Field(default=400, ge=50, le=4000)
    height: int = Field(default=300, ge=50, le=4000)

    @field_validator("series")
    @classmethod
    def _bounded(cls, series: list[Any] | dict[str, float]) -> list[Any] | dict[str, float]:
        if len(series) > MAX_BARS:
            raise ValueError(f"at most {MAX_BARS} bars (pass limit, or transform the series first)")
        return series


class Output(BaseModel):
    """A Vega-Lite v5 spec: a bar mark over inline data with fields ``label`` and ``value``."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: str = Field(alias="$schema")
    description: str
    title: str
    width: int
    height: int
    data: dict[str, list[dict[str, Any]]] = Field(description='{"values": [{"label": ..., "value": ...}, ...]}')
    mark: dict[str, Any]
    encoding: dict[str, Any]


def _points(series: list[Point] | dict[str, float] | list[tuple[Label, float]]) -> list[tuple[str, float]]:
    if isinstance(series, dict):
        return [(str(label), float(value)) for label, value in series.items()]
    points: list[tuple[str, float]] = []
    for item in series:
        label, value = (item.label, item.value) if isinstance(item, Point) else item
        points.append((label if isinstance(label, str) else format(label, "g"), float(value)))
    return points


def run(params: Params, ctx: ToolContext) -> Output:
    points = _points(params.series)
    if params.sort == "descending":
        points.sort(key=lambda p: (-p[1], p[0]))
    elif params.sort == "ascending":
        points.sort(key=lambda p: (p[1], p[0]))
    elif params.sort == "label":
        points.sort(key=lambda p: p[0])
    if params.limit is not None:
        points = points[: params.limit]
    category = {
        "field": "label",
        "type": "nominal",
        "title": params.x_title,
        "sort": None,  # the order of data.values, which is already the requested order
    }
    quantity = {"field": "value", "type": "quantitative", "title": params.y_title}
    category_axis, value_axis = ("y", "x") if params.horizontal else ("x", "y")
    return Output.model_validate(
        {
            "$schema": VEGA_LITE_SCHEMA,
            "description": params.title or f"{params.y_title} by {params.x_title}",
            "title": params.title,
            "width": params.width,
            "height": params.height,
            "data": {"values": [{"label": label, "value": value} for label, value in points]},
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {category_axis: category, value_axis: quantity},
        }
    )
