"""Lambda entry point of the HTTP API (API Gateway REST proxy events)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from functions.api.app import app

logger = Logger(service="stepgraph-api")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Safe to run concurrently (the local cloud serves requests on threads, as several Lambda instances would):
    # the resolver keeps each request's state per thread, and per-request log keys live in the thread's context.
    request = event.get("requestContext") if isinstance(event, dict) else None
    logger.thread_safe_append_keys(correlation_id=request.get("requestId") if isinstance(request, dict) else None)
    try:
        return app.resolve(event, context)
    finally:
        logger.thread_safe_clear_keys()
