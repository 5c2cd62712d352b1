"""Graph versions under races: one winner per version number, and a publish that died midway is finished."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from functions.errors import ConflictError
from functions.store.graphs import GraphVersion
from functions.store.table import graph_pk, now_iso

if TYPE_CHECKING:
    from functions.api.services import Services

SPEC = {"name": "g", "nodes": [{"id": "a", "tool": "util.echo"}]}


def version(graph_id: str, number: int, name: str = "g") -> GraphVersion:
    return GraphVersion(
        graph_id=graph_id,
        version=number,
        spec={**SPEC, "name": name},
        definition_sha256="x",
        state_machine_arn=f"arn:aws:states:us-east-1:123456789012:stateMachine:sm-{number}",
        created_at=now_iso(),
    )


def test_two_publishers_of_the_same_version_number_one_wins(aws: Services) -> None:
    # GIVEN a graph at version 1
    aws.graphs.create(version("g_000000000001", 1))

    # WHEN two updates both read version 1 and publish version 2
    aws.graphs.add_version(version("g_000000000001", 2, name="first"))
    with pytest.raises(ConflictError, match="graph g_000000000001 changed while version 2 was being published"):
        aws.graphs.add_version(version("g_000000000001", 2, name="second"))

    # THEN version 2 is the first writer's and the head points at it
    head = aws.graphs.get("g_000000000001")
    assert head.latest_version == 2 and head.name == "first"
    assert aws.graphs.version("g_000000000001", 2).spec["name"] == "first"


def test_a_publish_that_died_between_its_writes_is_finished_by_the_next(aws: Services, client) -> None:
    # GIVEN version 2's item written but the head never moved (the writer died in between)
    aws.graphs.create(version("g_000000000002", 1))
    aws.table.put_item(Item={**aws.graphs._version_item(version("g_000000000002", 2, name="stalled"))})
    assert aws.graphs.get("g_000000000002").latest_version == 1
    # AND readers see only the published version
    assert [v["version"] for v in client.get("/graphs/g_000000000002").json()["versions"]] == [1]

    # WHEN the next publisher tries version 2
    with pytest.raises(ConflictError, match="graph g_000000000002 changed while version 2 was being published"):
        aws.graphs.add_version(version("g_000000000002", 2, name="next"))

    # THEN the stalled version is completed, and a retry publishes version 3
    assert aws.graphs.get("g_000000000002").latest_version == 2
    aws.graphs.add_version(version("g_000000000002", 3, name="next"))
    assert aws.graphs.get("g_000000000002").latest_version == 3
    item = aws.table.get_item(Key={"pk": graph_pk("g_000000000002"), "sk": "GRAPH"})["Item"]
    assert item["name"] == "next"
