"""The one root conftest: fake AWS credentials for every test, and the local cloud fixtures."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

# Set before anything imports boto3: no test may ever reach a real AWS account.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_key] = _value
# Every AWS call a function or state machine makes must be allowed by its policy in template.yaml.
os.environ.setdefault("STEPGRAPH_LOCAL_IAM", "enforce")
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

from local.cloud import LocalCloud  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    """A fresh local stack (moto backends, table, role, in-process Lambda, status-change rule) per test."""
    with LocalCloud() as local_cloud:
        yield local_cloud


@pytest.fixture
def api(cloud: LocalCloud) -> Iterator[httpx.Client]:
    """An HTTP client on the local API that sends the stack's API key."""
    with cloud.client(api_key=cloud.api_key) as client:
        yield client


@pytest.fixture(autouse=True)
def _no_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's tables are as wide as ``COLUMNS`` says; test runners (pytest-xdist workers) set it to their
    terminal's width. Tests see what a script piping the CLI sees: no terminal size."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
