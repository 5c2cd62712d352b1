"""The stream function's Lambda entry: DynamoDB stream batches → :class:`StreamProcessor`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from functions.live.stream import StreamProcessor
from functions.settings import PerSettings

logger = Logger(service="stepgraph-stream")
_processor: PerSettings[StreamProcessor] = PerSettings(StreamProcessor)


def get_processor() -> StreamProcessor:
    """The processor of this process, made on first use and again when the settings were re-read."""
    return _processor.get()


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return {"batchItemFailures": []}
    return get_processor().process(records)
