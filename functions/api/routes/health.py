"""``GET /health``: liveness, no key."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.models import Health

router = APIGatewayRouter()


@router.get("/health", summary="Liveness (no API key)", tags=["health"], security=[])
def get_health() -> Health:
    return Health()
