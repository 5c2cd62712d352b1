"""The built functions ship botocore's data for the AWS services their code calls, and only those (the Makefile's
``LAMBDA_BOTOCORE_SERVICES``): a client for any other service would fail in Lambda with UnknownServiceError."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CLIENT = re.compile(r"""(?:boto3\.client|boto3\.resource|\.create_client)\(\s*["']([a-z0-9-]+)["']""")


def shipped_services() -> set[str]:
    found = re.search(r"^LAMBDA_BOTOCORE_SERVICES :?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "LAMBDA_BOTOCORE_SERVICES is not in the Makefile"
    return set(found.group(1).split())


def test_every_service_the_functions_call_is_shipped() -> None:
    # GIVEN every client the functions' code makes (boto3.client / boto3.resource / create_client)
    called = {name for path in sorted((ROOT / "functions").rglob("*.py")) for name in _CLIENT.findall(path.read_text())}
    assert {"dynamodb", "stepfunctions"} <= called  # the pattern does find them
    # THEN the build keeps each one's botocore data
    assert called - shipped_services() == set()
