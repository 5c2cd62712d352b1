"""The stream function's Lambda entry: DynamoDB stream batches → :class:`StreamProcessor`."""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools import Logger

from functions.live.stream import StreamProcessor
from functions.settings import Settings, get_settings

logger = Logger(service="stepgraph-stream")
_lock = threading.Lock()
_processor: StreamProcessor | None = None
_built_for: Settings | None = None


def get_processor() -> StreamProcessor:
    """The processor of this process, made on first use and again when the settings were re-read."""
    global _processor, _built_for
    settings = get_settings()
    with _lock:
        if _processor is None or _built_for is not settings:
            _processor = StreamProcessor()
            _built_for = settings
        return _processor


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return {"batchItemFailures": []}
    return get_processor().process(records)
