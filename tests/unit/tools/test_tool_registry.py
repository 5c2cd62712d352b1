"""The tool registry: discovery, lookup, schemas for the API and validation, and tool invocation."""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel, ValidationError

from functions.errors import NotFoundError, ToolError
from functions.executor.tools import registry
from functions.executor.tools.base import InvalidParams, ToolContext
from functions.executor.tools.registry import ToolRegistry, UnknownTool
from statemachine.errors import SpecError
from statemachine.validation import validate

if TYPE_CHECKING:
    from pathlib import Path

DESIGN_TOOLS = {
    "http.get",
    "json.pick",
    "transform",
    "text.analyze",
    "chart.bar",
    "code.extract_functions",
    "code.complexity",
    "code.detect_issues",
    "code.suggest",
    "code.score",
    "util.echo",
    "util.sleep",
    "util.fail",
}


def test_every_tool_of_the_design_is_registered() -> None:
    """GIVEN the built-in package WHEN listing names THEN DESIGN.md's first tool set is there, sorted."""
    names = registry.names()
    assert names == sorted(names)
    assert set(names) >= DESIGN_TOOLS


def test_describe_gives_name_one_line_description_and_json_schemas() -> None:
    """GIVEN any tool WHEN described THEN it has a one-line description and object schemas for params and output."""
    described = registry.describe_all()
    assert [d["name"] for d in described] == registry.names()
    for d in described:
        assert set(d) == {"name", "description", "params_schema", "output_schema"}
        assert d["description"] and "\n" not in d["description"]
        assert d["params_schema"]["type"] == "object"
        assert d["output_schema"]["type"] == "object"
    assert registry.describe("util.sleep")["params_schema"]["required"] == ["seconds"]


def test_unknown_tool_is_a_not_found_error_naming_it() -> None:
    """GIVEN a name no tool has WHEN looked up THEN a NotFoundError names it (404 through the API)."""
    with pytest.raises(NotFoundError, match=r"no\.such"):
        registry.get("no.such")
    with pytest.raises(UnknownTool, match=r"unknown tool 'no\.such'; known tools: chart\.bar, "):
        registry.describe("no.such")
    assert registry.params_model("no.such") is None


def test_lambda_nodes_accept_any_params_but_are_not_registry_tools() -> None:
    """GIVEN a `lambda:` tool WHEN validating THEN any object passes; it is neither listed nor runnable here."""
    model = registry.params_model("lambda:arn:aws:lambda:us-east-1:123456789012:function:my-agent")
    assert model is not None
    assert model.model_validate({"anything": [1, {"x": None}]}).model_dump() == {"anything": [1, {"x": None}]}
    assert registry.params_model("lambda:") is None
    assert not any(n.startswith("lambda:") for n in registry.names())
    with pytest.raises(UnknownTool, match="Task state"):
        registry.get("lambda:my-agent")


def test_params_model_is_what_validation_checks() -> None:
    """GIVEN util.sleep's params model WHEN given a typo or a negative THEN it rejects them."""
    model = registry.params_model("util.sleep")
    assert model is not None and issubclass(model, BaseModel)
    assert model.model_validate({"seconds": 0.25}).model_dump() == {"seconds": 0.25}
    with pytest.raises(ValidationError, match=r"seconds\n  Field required"):
        model.model_validate({"second": 1})
    with pytest.raises(ValidationError, match=r"seconds\n  Input should be greater than or equal to 0"):
        model.model_validate({"seconds": -1})


def test_invoke_rejects_bad_params_with_a_tool_error_naming_the_field() -> None:
    """GIVEN bad params at run time WHEN invoked THEN InvalidParams (code InvalidParams) names the field."""
    with pytest.raises(InvalidParams, match="seconds") as info:
        registry.get("util.sleep").invoke({"seconds": "soon"}, ToolContext())
    assert info.value.code == "InvalidParams"
    assert isinstance(info.value, ToolError)


def test_adding_a_tool_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a package with one new tool module and a helper WHEN discovered THEN the tool is served, the helper not."""
    pkg = tmp_path / "extra_tools_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_helper.py").write_text("X = 1\n")
    (pkg / "shout.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel

            NAME = "text.shout"
            DESCRIPTION = "Upper-case a text."

            class Params(BaseModel):
                text: str

            class Output(BaseModel):
                text: str

            def run(params, ctx):
                ctx.log("shouting")
                return {"text": params.text.upper()}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        reg = ToolRegistry("extra_tools_pkg")
        assert reg.names() == ["text.shout"]
        lines: list[str] = []
        out = reg.get("text.shout").invoke({"text": "hi"}, ToolContext(log=lines.append))
        assert out == {"text": "HI"}
        assert lines == ["shouting"]
        assert reg.describe("text.shout")["params_schema"]["required"] == ["text"]
    finally:
        for mod in [m for m in sys.modules if m.startswith("extra_tools_pkg")]:
            del sys.modules[mod]


def test_a_broken_tool_module_is_reported_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a tool module without run WHEN discovered THEN the error names the module and what it lacks."""
    pkg = tmp_path / "broken_tools_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "half.py").write_text("NAME = 'x'\nDESCRIPTION = 'y'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(TypeError, match=r"broken_tools_pkg\.half lacks Params, Output, run"):
            ToolRegistry("broken_tools_pkg").names()
    finally:
        for mod in [m for m in sys.modules if m.startswith("broken_tools_pkg")]:
            del sys.modules[mod]


def test_discovery_imports_no_heavy_modules() -> None:
    """GIVEN a fresh interpreter WHEN every tool is discovered THEN httpx and jmespath are not imported yet."""
    import subprocess

    code = (
        "import sys; from functions.executor.tools import registry; registry.describe_all();"
        "print(sorted(m for m in ('httpx', 'jmespath', 'ast', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "httpx" not in out and "jmespath" not in out and "boto3" not in out


def test_getting_one_tool_imports_only_its_module() -> None:
    """GIVEN a fresh interpreter (an executor cold start) WHEN one tool is fetched THEN no other tool module loads."""
    import json
    import subprocess

    code = (
        "import json, sys; from functions.executor.tools import registry; t = registry.get('util.echo');"
        "p = 'functions.executor.tools.';"
        "print(json.dumps(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith(p))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["_context", "base", "registry", "util_echo"]


def test_the_fast_path_and_discovery_agree() -> None:
    """GIVEN every registered name WHEN fetched by name on a fresh registry THEN the same tool as discovery finds."""
    discovered = {name: registry.get(name) for name in registry.names()}
    for name, tool in discovered.items():
        assert ToolRegistry().get(name) == tool


@pytest.mark.parametrize(
    "target",
    [
        "stepgraph-executor",
        "stepgraph-executor:$LATEST",
        "STEPGRAPH-API:prod",
        "123456789012:function:stepgraph-events",
        "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor:3",
        "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:stepgraph-StreamFunction",
    ],
)
def test_validation_refuses_a_lambda_node_naming_the_stacks_own_function(target: str) -> None:
    # GIVEN a spec whose lambda: node names one of the stack's functions
    spec = {"name": "g", "nodes": [{"id": "x", "tool": f"lambda:{target}", "params": {}}]}

    # WHEN it is validated with the registry as catalog THEN it is refused at the node's tool
    with pytest.raises(SpecError) as raised:
        validate(spec, registry)
    assert raised.value.details[0]["loc"] == "nodes[0].tool"
    assert "own functions" in raised.value.details[0]["message"]


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("stepgraph-user-resize", "stepgraph-user-resize"),
        ("arn:aws:lambda:us-east-1:123456789012:function:my-agent:7", "my-agent"),
        ("123456789012:function:other:live", "other"),
        ("stepgraph", "stepgraph"),
    ],
)
def test_users_functions_are_not_the_stacks_own(target: str, name: str) -> None:
    assert registry.function_name(target) == name
    assert registry.lambda_problem(target) is None
