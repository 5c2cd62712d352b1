"""Text from outside (a cursor, Step Functions' error and cause) that Python's parser or UTF-8 cannot take
whole is refused or made valid, never a crash."""

from __future__ import annotations

import base64
import json

import pytest

from functions.errors import BadRequestError
from functions.runs_sync import error_of
from functions.store.table import decode_cursor

DEEP = "[" * 5000 + "]" * 5000


def test_a_cursor_nested_past_the_parser_is_a_bad_request() -> None:
    cursor = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    with pytest.raises(BadRequestError, match="not one this API returned"):
        decode_cursor(cursor, {"pk": None, "sk": None})


def test_an_error_cause_nested_past_the_parser_is_kept_as_text() -> None:
    # A Lambda function may fail with any payload; Step Functions passes it on as the cause.
    error = error_of("Boom", DEEP)
    assert error["code"] == "Boom"
    assert error["message"].startswith(DEEP[:4000]) and error["message"].endswith("(cut: 10000 characters in all)")


def test_a_long_error_message_is_cut_saying_how_long_it_was() -> None:
    cause = json.dumps({"errorMessage": "x" * 10_000, "errorType": "Big"})
    assert error_of("Big", cause) == {"code": "Big", "message": "x" * 4000 + "... (cut: 10000 characters in all)"}


def test_an_error_message_with_a_lone_surrogate_is_kept_with_a_replacement_character() -> None:
    cause = '{"errorMessage": "bad \\ud800 text", "errorType": "Bad\\udfff"}'
    assert error_of("Bad\udfff", cause) == {"code": "Bad\ufffd", "message": "bad \ufffd text"}
