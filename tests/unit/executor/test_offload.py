"""Offloading large output fields to chunked items and resolving the references back."""

from __future__ import annotations

from typing import Any

from functions.store.offload import CHUNK_BYTES, REF_KEY, BlobStore, Offloader, is_ref, size_of, split_utf8

RUN = "r_00000000000000aa"


def all_items(table: Any, prefix: str) -> list[dict[str, Any]]:
    """Every item of the run whose sort key starts with ``prefix`` (following pages)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
        "ExpressionAttributeValues": {":pk": f"RUN#{RUN}", ":p": prefix},
    }
    while True:
        page = table.query(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_small_outputs_stay_inline(table: Any) -> None:
    # GIVEN an output under the limit
    offloader = Offloader(BlobStore(table), inline_limit=1024)
    output = {"status_code": 200, "text": "short", "items": [1, 2, 3]}

    # WHEN it is offloaded THEN nothing changes and nothing is stored
    assert offloader.offload(RUN, "fetch", 1, output) == output
    assert table.scan()["Items"] == []


def test_large_fields_become_references_and_scalars_stay_inline(table: Any) -> None:
    # GIVEN an output with one large text field, a large list and scalars
    offloader = Offloader(BlobStore(table), inline_limit=1024)
    output = {"status_code": 200, "ok": True, "none": None, "text": "x" * 5000, "rows": list(range(2000))}

    # WHEN it is offloaded
    slim = offloader.offload(RUN, "fetch", 1, output)

    # THEN large fields are references naming where they are, scalars untouched, the payload is small
    assert slim["status_code"] == 200 and slim["ok"] is True and slim["none"] is None
    assert is_ref(slim["text"]) and is_ref(slim["rows"])
    ref = dict(slim["text"][REF_KEY])
    assert len(ref.pop("sig")) == 32
    assert ref == {"run_id": RUN, "node": "fetch", "iteration": 1, "field": "text", "bytes": 5002}
    assert size_of(slim) < 1024
    # AND resolving gives the original back
    assert offloader.resolve(slim, RUN) == output


def test_a_five_megabyte_output_is_chunked_and_read_back_whole(table: Any) -> None:
    # GIVEN a 5 MB output with multi-byte characters (chunks must not cut a character)
    offloader = Offloader(BlobStore(table), inline_limit=8192)
    text = ("héllo wörld ✓ " * 400_000)[: 5 * 1024 * 1024]
    output = {"text": text, "count": 3}

    # WHEN it is offloaded
    slim = offloader.offload(RUN, "big", 1, output)

    # THEN it is stored in several chunks of at most 350 KB and the payload stays tiny
    chunks = all_items(table, "BLOB#big#0001#text#")
    assert len(chunks) > 10
    assert all(len(str(c["data"]).encode()) <= CHUNK_BYTES for c in chunks)
    assert size_of(slim) < 300
    assert offloader.resolve(slim, RUN) == output


def test_an_object_of_many_small_fields_is_stored_whole_below_the_top(table: Any) -> None:
    # GIVEN a nested object of many small fields (none over the limit, the whole far over it)
    offloader = Offloader(BlobStore(table), inline_limit=512)
    output = {"data": {f"k{i}": f"value {i}" for i in range(500)}, "n": 1}

    # WHEN it is offloaded
    slim = offloader.offload(RUN, "n1", 1, output)

    # THEN the nested object is one reference, the top level keeps its scalar
    assert is_ref(slim["data"]) and slim["n"] == 1
    assert offloader.resolve(slim, RUN) == output


def test_paths_that_conditions_read_stay_inline(table: Any) -> None:
    # GIVEN an output whose `meta.kind` a condition reads, inside a large object
    offloader = Offloader(BlobStore(table), inline_limit=256)
    output = {"meta": {"kind": "k" * 300, "blob": "b" * 5000, "n": 2}, "other": "o" * 5000}

    # WHEN it is offloaded keeping `meta.kind`
    slim = offloader.offload(RUN, "n1", 1, output, keep_inline=["meta.kind"])

    # THEN the path read stays a plain string, its siblings go by reference
    assert slim["meta"]["kind"] == "k" * 300
    assert slim["meta"]["n"] == 2
    assert is_ref(slim["meta"]["blob"]) and is_ref(slim["other"])
    assert offloader.resolve(slim, RUN) == output


def test_a_large_list_output_is_stored_whole(table: Any) -> None:
    offloader = Offloader(BlobStore(table), inline_limit=100)
    slim = offloader.offload(RUN, "each", 2, list(range(100)))
    assert is_ref(slim) and slim[REF_KEY]["field"] == "$" and slim[REF_KEY]["iteration"] == 2
    assert offloader.resolve({"results": {"each": slim}}, RUN) == {"results": {"each": list(range(100))}}


def test_split_utf8_never_cuts_a_character() -> None:
    text = "aé✓𝄞" * 1000
    pieces = split_utf8(text, limit=7)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 7 for p in pieces)


def test_a_reference_stepgraph_did_not_make_is_plain_data(table: Any) -> None:
    # GIVEN a stored field of this run, and user data shaped like references: unsigned, with a forged
    # signature, and a genuine reference of this run whose fields were changed
    offloader = Offloader(BlobStore(table), inline_limit=100)
    genuine = offloader.offload(RUN, "n1", 1, {"text": "secret " * 50})["text"]
    unsigned = {REF_KEY: {"run_id": RUN, "node": "n1", "iteration": 1, "field": "text", "bytes": 350}}
    forged = {REF_KEY: {**unsigned[REF_KEY], "sig": "0" * 32}}
    altered = {REF_KEY: {**genuine[REF_KEY], "field": "other"}}

    # WHEN a value holding them is resolved for this run
    data = {"a": unsigned, "b": forged, "c": altered, "d": [genuine]}
    resolved = offloader.resolve(data, RUN)

    # THEN only stepgraph's own reference is read back; the others come back exactly as sent
    assert resolved == {"a": unsigned, "b": forged, "c": altered, "d": ["secret " * 50]}
    assert offloader.genuine(genuine, RUN) and not offloader.genuine(forged, RUN)


def test_another_runs_reference_is_plain_data(table: Any) -> None:
    # GIVEN a genuine reference made for another run
    offloader = Offloader(BlobStore(table), inline_limit=100)
    other = offloader.offload("r_00000000000000e2", "n1", 1, {"text": "theirs " * 50})["text"]

    # WHEN it appears in this run's data THEN it is not resolved: this run cannot read the other's store
    assert offloader.resolve({"x": other}, RUN) == {"x": other}
    assert not offloader.genuine(other, RUN)


def test_user_data_shaped_like_a_pending_placeholder_is_kept(table: Any) -> None:
    # GIVEN an output holding the key the offloader uses internally, next to a field that is offloaded
    offloader = Offloader(BlobStore(table), inline_limit=100)
    output = {"odd": {"$stepgraph_pending": "text"}, "text": "t" * 500}

    # WHEN it is offloaded and resolved THEN the user's object comes back as it was
    slim = offloader.offload(RUN, "n1", 1, output)
    assert slim["odd"] == {"$stepgraph_pending": "text"}
    assert offloader.resolve(slim, RUN) == output


def test_a_writer_that_loses_the_key_race_signs_with_the_winners_key(table: Any) -> None:
    # GIVEN a reference key another process created between this one's read and its own create
    from functions.store.offload import KEY_ITEM

    table.put_item(Item={**KEY_ITEM, "key": "ab" * 32})
    store = BlobStore(table)
    reads: list[dict[str, Any]] = []
    original_get = table.get_item

    def stale_get(**kwargs: Any) -> dict[str, Any]:
        reads.append(kwargs)
        return {}  # the key item did not exist yet when this writer looked

    table.get_item = stale_get
    try:
        # WHEN it loads the key
        key = store._load_key()
    finally:
        table.get_item = original_get
    # THEN it uses the key that won, learnt from its failed put, without reading again
    assert key == bytes.fromhex("ab" * 32)
    assert len(reads) == 1
