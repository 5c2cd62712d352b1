"""Settings of the functions, read from the environment once (see docs/architecture.md)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Generic, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_stepfunctions.literals import LogLevelType
    from mypy_boto3_stepfunctions.type_defs import LoggingConfigurationTypeDef

STATES_LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")


@dataclass(frozen=True)
class Settings:
    table: str
    executor_arn: str
    states_role_arn: str
    prefix: str
    api_key: str | None
    inline_limit: int
    http_allow_hosts: tuple[str, ...]
    region: str
    cors_origins: tuple[str, ...] = ()
    ws_url: str | None = None
    ws_endpoint: str | None = None
    """The WebSocket API's management endpoint (``https://<api>.execute-api.<region>.amazonaws.com/<stage>``)."""
    api_key_id: str | None = None
    """The API Gateway key's id (AWS): WebSocket connections must present its value."""
    run_retention_days: int = 30
    """Days a run's items (run, node results, events, blobs) are kept after their last write (TTL)."""
    states_log_level: LogLevelType = "OFF"
    """Execution logging of the state machines the API creates: ALL, ERROR, FATAL or OFF."""
    states_log_group_arn: str | None = None
    """The log group they log to (its ARN ending ``:*``, as CloudFormation's ``Arn`` attribute gives it)."""
    tracing: bool = False
    """X-Ray tracing of the state machines (the functions' own tracing is the template's)."""

    tool_role_arn: str = "arn:aws:iam::123456789012:role/stepgraph-tools"
    tool_memory_mb: int = 256

    schedule_group: str = "stepgraph"
    """The stack's EventBridge Scheduler schedule group (every schedule the API makes is in it)."""
    schedule_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-schedules"
    """The function schedules invoke (it starts the run)."""
    scheduler_role_arn: str = "arn:aws:iam::123456789012:role/stepgraph-scheduler"
    """The role EventBridge Scheduler invokes it as."""

    def logging_configuration(self) -> LoggingConfigurationTypeDef:
        """CreateStateMachine's ``loggingConfiguration``: the level, and the log group unless logging is off."""
        if self.states_log_level == "OFF" or not self.states_log_group_arn:
            return {"level": "OFF"}
        return {
            "level": self.states_log_level,
            "includeExecutionData": False,  # runs' inputs and outputs stay in the table, not in logs
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": self.states_log_group_arn}}],
        }

    @property
    def account_id(self) -> str:
        parts = self.executor_arn.split(":")
        return parts[4] if len(parts) > 4 else "123456789012"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; cached, ``get_settings.cache_clear()`` re-reads them."""
    env = os.environ
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    allow = tuple(h.strip() for h in env.get("STEPGRAPH_HTTP_ALLOW_HOSTS", "").split(",") if h.strip())
    origins = tuple(o.strip().rstrip("/") for o in env.get("STEPGRAPH_CORS_ORIGINS", "").split(",") if o.strip())
    return Settings(
        table=env.get("STEPGRAPH_TABLE", "stepgraph-local"),
        executor_arn=env.get(
            "STEPGRAPH_EXECUTOR_ARN", f"arn:aws:lambda:{region}:123456789012:function:stepgraph-executor"
        ),
        states_role_arn=env.get("STEPGRAPH_STATES_ROLE_ARN", "arn:aws:iam::123456789012:role/stepgraph-states"),
        prefix=env.get("STEPGRAPH_PREFIX", "stepgraph"),
        api_key=env.get("STEPGRAPH_API_KEY") or None,
        inline_limit=int(env.get("STEPGRAPH_INLINE_LIMIT", "8192")),
        http_allow_hosts=allow,
        region=region,
        cors_origins=origins,
        ws_url=env.get("STEPGRAPH_WS_URL") or None,
        ws_endpoint=env.get("STEPGRAPH_WS_ENDPOINT") or None,
        api_key_id=env.get("STEPGRAPH_API_KEY_ID") or None,
        run_retention_days=int(env.get("STEPGRAPH_RUN_RETENTION_DAYS", "30")),
        states_log_level=_states_log_level(env.get("STEPGRAPH_STATES_LOG_LEVEL") or "OFF"),
        states_log_group_arn=env.get("STEPGRAPH_STATES_LOG_GROUP_ARN") or None,
        tracing=env.get("STEPGRAPH_TRACING", "").lower() == "true",
        tool_role_arn=env.get("STEPGRAPH_TOOL_ROLE_ARN", "arn:aws:iam::123456789012:role/stepgraph-tools"),
        tool_memory_mb=int(env.get("STEPGRAPH_TOOL_MEMORY_MB", "256")),
        schedule_group=env.get("STEPGRAPH_SCHEDULE_GROUP") or env.get("STEPGRAPH_PREFIX", "stepgraph"),
        schedule_function_arn=env.get(
            "STEPGRAPH_SCHEDULE_FUNCTION_ARN", f"arn:aws:lambda:{region}:123456789012:function:stepgraph-schedules"
        ),
        scheduler_role_arn=env.get(
            "STEPGRAPH_SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/stepgraph-scheduler"
        ),
    )


def _states_log_level(value: str) -> LogLevelType:
    level = value.strip().upper()
    if level not in STATES_LOG_LEVELS:
        raise ValueError(f"STEPGRAPH_STATES_LOG_LEVEL must be one of {', '.join(STATES_LOG_LEVELS)}, not {value!r}")
    return cast("LogLevelType", level)


T = TypeVar("T")


class PerSettings(Generic[T]):
    """A process-wide object made on first use, and made again once the settings were re-read (a new local
    cloud or table): a handler's lazily built service, with no AWS client at import time."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built_for: Settings | None = None

    def get(self) -> T:
        settings = get_settings()
        with self._lock:
            if self._value is None or self._built_for is not settings:
                self._value = self._factory()
                self._built_for = settings
            return self._value
