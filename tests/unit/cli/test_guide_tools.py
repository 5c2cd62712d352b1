"""The tool reference in the docs is generated from the registry and kept in sync."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import stepgraph_cli as cli
from functions.executor.tools import registry
from stepgraph_cli import tool_table

if TYPE_CHECKING:
    import pytest

    from tests.unit.cli.conftest import FakeApi

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"


def test_the_tool_table_in_the_readme_is_the_generated_one() -> None:
    # GIVEN the README, which carries the generated tool table
    doc = README
    text = doc.read_text(encoding="utf-8")
    assert tool_table.TOOLS_BEGIN in text, "README.md lost its generated tool table"

    # WHEN the table is generated from the registry now
    generated = tool_table.tools_markdown()

    # THEN the doc holds exactly it (run `stepgraph tools markdown --write <doc>` after changing a tool)
    assert tool_table.replace_tools_block(text, generated) == text, f"run: stepgraph tools markdown --write {doc}"


def test_every_registered_tool_and_its_required_params_are_listed() -> None:
    # GIVEN the registry WHEN the table is generated THEN each tool has a row naming its required params
    table = tool_table.tools_markdown()
    for tool in registry.describe_all():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{tool['name']}` |"))
        for param in tool["params_schema"].get("required", []):
            assert f"`{param}`" in row and "(required)" in row
        assert tool["description"].replace("|", "\\|") in row
    assert "| `lambda:<name or ARN>` |" in table


def test_write_replaces_only_the_generated_block(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a doc with a stale tool block between other text
    doc = tmp_path / "README.md"
    doc.write_text(f"# Title\n\nbefore\n\n{tool_table.TOOLS_BEGIN}\n| stale |\n{tool_table.TOOLS_END}\n\nafter\n")

    # WHEN the block is rewritten
    with fake.client() as client:
        code = cli.main(["tools", "markdown", "--write", str(doc)], client=client)

    # THEN the text around it is untouched and the block is the generated table; no API call was needed
    text = doc.read_text()
    assert code == 0
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "| stale |" not in text
    assert "| `util.echo` |" in text
    assert fake.requests == []

    # AND a doc without the markers is a usage error
    bare = tmp_path / "bare.md"
    bare.write_text("# nothing here\n")
    with fake.client() as client:
        assert cli.main(["tools", "markdown", "--write", str(bare)], client=client) == cli.EXIT_USAGE
    assert "has no" in capsys.readouterr().err
