"""Lambda entry point of the HTTP API (API Gateway REST proxy events)."""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from functions.api.app import app

logger = Logger(service="stepgraph-api")
# The resolver keeps the request being routed on ``app`` and the Logger clears its keys per invocation: one
# invocation at a time per process, as a Lambda environment runs them. Uncontended in AWS; in the local cloud
# (threads share this module) concurrent API calls would otherwise answer with each other's status codes.
_one_at_a_time = threading.Lock()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _one_at_a_time:
        return _handle(event, context)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
