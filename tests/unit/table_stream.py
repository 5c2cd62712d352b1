"""Unit tests' view of the table's stream: the stream function's processor, run on demand.

Unit tables are created with the template's stream; ``attach(table)`` takes moto's stream records (as
the local cloud does) and ``pump()`` hands them to ``StreamProcessor``, so events are numbered exactly
as in AWS, at the moment a test reads them.
"""

from __future__ import annotations

import json
from typing import Any

from functions.live.stream import StreamProcessor
from local.streams import TableStream
from local.template import Template

STREAM_SPEC = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
_active: list[TableStream] = []
_frames: list[Frames] = []


class Frames:
    """A poster that keeps what would be posted to each WebSocket connection."""

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = {}
        self.gone: set[str] = set()

    def post(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone:
            from functions.live.push import GoneError

            raise GoneError(connection_id)
        self.sent.setdefault(connection_id, []).append(data)

    def messages(self, connection_id: str) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.sent.get(connection_id, [])]


def attach(table: Any) -> TableStream:
    """Take ``table``'s stream records from now on (until ``detach``)."""
    mapping = Template.load().stream_mappings()[0]
    frames = Frames()
    _frames.append(frames)
    processor = StreamProcessor(table=table, poster=frames)
    stream = TableStream(table.name, "arn:aws:dynamodb:us-east-1:123456789012:table/unit/stream/x", processor.process)
    stream.filters = mapping.filters
    stream.install()
    _active.append(stream)
    return stream


def detach() -> None:
    while _active:
        _active.pop().uninstall()
    _frames.clear()


def posted() -> Frames:
    """What the stream function posted to WebSocket connections."""
    return _frames[-1]


def pump() -> None:
    """Deliver every stream record so far to the stream function (events are numbered after this)."""
    for stream in _active:
        stream.pump()
