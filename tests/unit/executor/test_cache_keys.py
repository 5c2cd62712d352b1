"""Cache keys: the same tool version and the same resolved params give the same key, anything else another."""

from __future__ import annotations

import hashlib
import json

from functions.executor.cache import cache_key, canonical, node_key, source_version, tool_version
from functions.executor.tools import registry


def test_canonical_json_sorts_keys_drops_blanks_and_keeps_unicode() -> None:
    assert canonical({"b": [1, {"z": None, "a": "é"}], "a": 1.5}) == '{"a":1.5,"b":[1,{"a":"é","z":null}]}'


def test_key_order_and_spacing_do_not_change_the_key() -> None:
    one = json.loads('{"url": "https://x", "headers": {"a": "1", "b": "2"}}')
    two = json.loads('{"headers":{"b":"2","a":"1"},"url":"https://x"}')
    assert cache_key("http.get", "v1", one) == cache_key("http.get", "v1", two)


def test_tool_version_and_every_value_are_part_of_the_key() -> None:
    base = cache_key("t", "v1", {"n": 1})
    assert len(base) == 64 and int(base, 16) >= 0
    others = {
        cache_key("t", "v2", {"n": 1}),
        cache_key("u", "v1", {"n": 1}),
        cache_key("t", "v1", {"n": 2}),
        cache_key("t", "v1", {"n": "1"}),
        cache_key("t", "v1", {"n": [1]}),
        cache_key("t", "v1", {}),
    }
    assert base not in others and len(others) == 6


def test_the_key_is_the_sha256_of_the_documented_text() -> None:
    expected = hashlib.sha256(b'["1","t","v1",{"a":1}]').hexdigest()
    assert cache_key("t", "v1", {"a": 1}) == expected


def test_a_built_in_tool_keys_on_its_params_with_defaults_filled_in() -> None:
    tool = registry.get("util.sleep")
    spelled = node_key("util.sleep", {"seconds": 1}, tool)
    assert spelled == node_key("util.sleep", {"seconds": 1.0}, tool)
    assert spelled != node_key("util.sleep", {"seconds": 2}, tool)
    fail = registry.get("util.fail")
    assert node_key("util.fail", {}, fail) == node_key("util.fail", {"failures": 1}, fail)


def test_a_built_in_tools_version_is_a_digest_of_its_source() -> None:
    echo, sleep = registry.get("util.echo"), registry.get("util.sleep")
    assert tool_version(echo) == source_version(echo.module)
    assert len(tool_version(echo)) == 16
    assert tool_version(echo) != tool_version(sleep)


def test_a_lambda_node_keys_on_its_tool_string_which_pins_the_version() -> None:
    v1 = node_key("lambda:arn:aws:lambda:us-east-1:1:function:f:1", {"q": "a"}, None)
    v2 = node_key("lambda:arn:aws:lambda:us-east-1:1:function:f:2", {"q": "a"}, None)
    assert v1 != v2
