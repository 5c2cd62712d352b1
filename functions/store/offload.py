"""Large output fields kept out of the Step Functions payload: stored as chunked items, passed by reference.

A field whose JSON is over the inline limit is written as ``BLOB#<node>#<iteration>#<field>#<chunk>`` items
(each chunk <= 350 KB of UTF-8 JSON text) and replaced in the payload by
``{"$stepgraph_ref": {"run_id", "node", "iteration", "field", "bytes", "sig"}}``. Numbers, booleans and null
always stay inline so Choice rules can read them.

A reference is honoured only when stepgraph made it for the run that reads it: ``sig`` is an HMAC-SHA256 of
the other fields under the stack's reference key (a random key kept in the table, read once per process and
only when a reference is made or met), and the reader checks the run id. Anything else shaped like a
reference (in a run's input, in params, in a tool's output) is plain data, returned as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.errors import StoreError
from functions.settings import get_settings
from functions.store.table import TableHandle, blob_sk, condition_failed, old_item, run_pk

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mypy_boto3_dynamodb.service_resource import Table

REF_KEY = "$stepgraph_ref"
CHUNK_BYTES = 350_000
WHOLE = "$"
"""The field name of a reference that stands for a whole output that is not an object."""
KEEP_INLINE_MAX = 32 * 1024
"""A string that conditions read stays inline up to this size even when over the inline limit."""
MAX_FIELD_KEY = 200
DOC_BUDGET = 96 * 1024
"""The most a document the executor returns may weigh; Parallel branches each carry one (256 KiB in all)."""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def size_of(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON of ``value`` (what Step Functions counts)."""
    return len(dumps(value).encode())


KEY_ITEM = {"pk": "STEPGRAPH", "sk": "REFKEY"}
"""The table item holding the stack's reference key (created by the first writer, never changed)."""

_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def is_ref(value: Any) -> bool:
    """Shaped like a reference (not necessarily a genuine one: see :meth:`BlobStore.genuine`)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(REF_KEY), dict)


def _signed_text(run_id: str, node: str, iteration: int, field: str, size: int) -> bytes:
    return json.dumps([run_id, node, iteration, field, size], separators=(",", ":")).encode()


def split_utf8(text: str, limit: int = CHUNK_BYTES) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes without cutting a character."""
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces or [""]


class BlobStore(TableHandle):
    """Writes and reads offloaded values as chunked items in the run's partition."""

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)

    def put(self, run_id: str, node: str, iteration: int, field: str, value: Any) -> dict[str, Any]:
        """Store ``value`` and return its reference object. Rewriting the same key is harmless (redelivery)."""
        if len(field.encode()) > MAX_FIELD_KEY:
            field = "h" + hashlib.sha256(field.encode()).hexdigest()[:40]
        text = dumps(value)
        pieces = split_utf8(text)
        size = len(text.encode())
        with self.table.batch_writer() as batch:
            # Chunk 0 carries the count; readers start from it.
            for index in range(len(pieces) - 1, -1, -1):
                batch.put_item(
                    Item={
                        "pk": run_pk(run_id),
                        "sk": blob_sk(node, iteration, field, index),
                        "data": pieces[index],
                        "chunks": len(pieces),
                        "bytes": size,
                    }
                )
        sig = self._sign(_signed_text(run_id, node, iteration, field, size))
        inner = {"run_id": run_id, "node": node, "iteration": iteration, "field": field, "bytes": size, "sig": sig}
        return {REF_KEY: inner}

    def genuine(self, value: Any, run_id: str) -> bool:
        """Whether ``value`` is a reference stepgraph made for run ``run_id`` (else it is plain data)."""
        if not is_ref(value):
            return False
        inner = value[REF_KEY]
        if inner.get("run_id") != run_id or set(inner) != {"run_id", "node", "iteration", "field", "bytes", "sig"}:
            return False
        node, iteration, field, size, sig = (inner[k] for k in ("node", "iteration", "field", "bytes", "sig"))
        if not (isinstance(node, str) and isinstance(field, str) and isinstance(sig, str)):
            return False
        if type(iteration) is not int or type(size) is not int:
            return False
        return hmac.compare_digest(self._sign(_signed_text(run_id, node, iteration, field, size)), sig)

    def _sign(self, text: bytes) -> str:
        return hmac.new(self._key(), text, hashlib.sha256).hexdigest()[:32]

    def _key(self) -> bytes:
        """The stack's reference key: read from the table once per process, created there by the first writer."""
        name = self.table.name
        key = _keys.get(name)
        if key is not None:
            return key
        with _keys_lock:
            key = _keys.get(name)
            if key is None:
                key = self._load_key()
                _keys[name] = key
        return key

    def _load_key(self) -> bytes:
        try:
            item = self.table.get_item(Key=KEY_ITEM, ConsistentRead=True).get("Item")
            if item is None:
                fresh = secrets.token_hex(32)
                try:
                    self.table.put_item(
                        Item={**KEY_ITEM, "key": fresh},
                        ConditionExpression="attribute_not_exists(pk)",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
                    return bytes.fromhex(fresh)
                except ClientError as exc:
                    if not condition_failed(exc):
                        raise
                    item = old_item(exc)  # another writer's key, which won
        except ClientError as exc:
            raise StoreError(f"could not read the reference key: {exc}") from exc
        if item is None or not isinstance(item.get("key"), str):
            raise StoreError("the reference key item is missing or malformed")
        return bytes.fromhex(str(item["key"]))

    def get(self, ref: Mapping[str, Any]) -> Any:
        """The value a reference (the object, or its inner ``$stepgraph_ref`` dict) stands for."""
        inner = ref.get(REF_KEY, ref)
        try:
            run_id, node, field = str(inner["run_id"]), str(inner["node"]), str(inner["field"])
            iteration = int(inner["iteration"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"malformed output reference: {inner!r}") from exc
        pk = run_pk(run_id)
        first = self.table.get_item(Key={"pk": pk, "sk": blob_sk(node, iteration, field, 0)}, ConsistentRead=True)
        item = first.get("Item")
        if item is None:
            raise StoreError(f"offloaded output not found: run {run_id}, node {node}, field {field}")
        count = int(item["chunks"])  # type: ignore[arg-type]
        pieces = {0: str(item["data"])}
        pending = [{"pk": pk, "sk": blob_sk(node, iteration, field, i)} for i in range(1, count)]
        client = self.table.meta.client
        while pending:
            batch, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {self.table.name: {"Keys": batch, "ConsistentRead": True}}
            while request:
                response = client.batch_get_item(RequestItems=request)
                for got in response.get("Responses", {}).get(self.table.name, []):
                    sk = str(got["sk"])
                    pieces[int(sk.rsplit("#", 1)[1])] = str(got["data"])
                request = response.get("UnprocessedKeys") or {}
        if len(pieces) != count:
            raise StoreError(f"offloaded output incomplete: run {run_id}, node {node}, field {field}")
        return json.loads("".join(pieces[i] for i in range(count)))


class Offloader:
    """Replaces large output fields by references and resolves references back (one run's blobs)."""

    def __init__(self, store: BlobStore | None = None, inline_limit: int | None = None) -> None:
        self.store = store or BlobStore()
        self.inline_limit = inline_limit if inline_limit is not None else get_settings().inline_limit

    def offload(
        self,
        run_id: str,
        node: str,
        iteration: int,
        output: Any,
        *,
        keep_inline: Iterable[str] = (),
        prefix: str = "",
    ) -> Any:
        """``output`` with what is over the inline limit stored and replaced by references.

        ``prefix`` names the stored fields of one part of a node's output (``item000003`` for a foreach
        item) so that parts never share a key.

        A string or list over the limit is stored whole. An object over the limit keeps its small fields
        and has its large ones stored; if it is still over the limit it is stored whole, except the
        output object itself and objects on a ``keep_inline`` path (dotted paths relative to the output
        that conditions read), whose fields are then stored one by one so their scalars stay inline.
        """
        keep = {p for p in keep_inline if p}
        pending: list[tuple[str, Any]] = []
        planned = self._plan(output, "", keep, pending, run_id)
        refs = {path: self.store.put(run_id, node, iteration, _field(prefix, path), value) for path, value in pending}
        return _fill(planned, refs)

    def _plan(self, value: Any, path: str, keep: set[str], pending: list[tuple[str, Any]], run_id: str) -> Any:
        if value is None or isinstance(value, bool | int | float) or self.store.genuine(value, run_id):
            return value
        size = size_of(value)
        if size <= self.inline_limit or (isinstance(value, str) and path in keep and size <= KEEP_INLINE_MAX):
            return value
        if isinstance(value, list) and path in keep:
            return [self._plan(v, f"{path}[{i}]", keep, pending, run_id) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return _defer(path or WHOLE, value, pending)
        mark = len(pending)
        planned = {k: self._plan(v, _join(path, k), keep, pending, run_id) for k, v in value.items()}
        if size_of(planned) <= self.inline_limit:
            return planned
        if path and not any(p.startswith(path + ".") for p in keep):
            del pending[mark:]
            return _defer(path, value, pending)
        for key, child in planned.items():
            child_path = _join(path, key)
            if child is None or isinstance(child, bool | int | float) or _is_pending(child):
                continue
            if self.store.genuine(child, run_id):
                continue
            if child_path in keep or any(p.startswith(child_path + ".") for p in keep):
                continue
            pending[:] = [(p, v) for p, v in pending if p != child_path and not p.startswith(child_path + ".")]
            planned[key] = _defer(child_path, value[key], pending)
        return planned

    def fit_document(
        self, run_id: str, node: str, iteration: int, doc: dict[str, Any], budget: int = DOC_BUDGET
    ) -> dict[str, Any]:
        """``doc`` with its largest non-scalar values in ``results``/``state``/``sd`` stored until it fits ``budget``.

        Per-field offloading keeps each output small, but many nodes together can still outgrow the
        Step Functions payload limit; this spills the biggest values (under this node's key) first.
        """
        total = size_of(doc)
        if total <= budget:
            return doc
        candidates: list[tuple[int, str, str, str | None, Any]] = []
        for section in ("results", "state", "sd"):
            values = doc.get(section)
            if not isinstance(values, dict):
                continue
            for key, value in values.items():
                if isinstance(value, dict) and not self.store.genuine(value, run_id):
                    candidates += [
                        (size_of(v), section, key, f, v) for f, v in value.items() if self._spillable(v, run_id)
                    ]
                elif self._spillable(value, run_id):
                    candidates.append((size_of(value), section, key, None, value))
        new = dict(doc)
        copied: set[tuple[str, str | None]] = set()
        for size, section, key, sub, value in sorted(candidates, key=lambda c: -c[0]):
            if total <= budget or size < 256:
                break
            if (section, None) not in copied:
                new[section] = dict(new[section])
                copied.add((section, None))
            field = f"spill.{section}.{key}" + (f".{sub}" if sub is not None else "")
            ref = self.store.put(run_id, node, iteration, field, value)
            if sub is None:
                new[section][key] = ref
            else:
                if (section, key) not in copied:
                    new[section][key] = dict(new[section][key])
                    copied.add((section, key))
                new[section][key][sub] = ref
            total -= size - size_of(ref)
        return new

    def genuine(self, value: Any, run_id: str) -> bool:
        """Whether ``value`` is a reference stepgraph made for run ``run_id`` (see :meth:`BlobStore.genuine`)."""
        return self.store.genuine(value, run_id)

    def _spillable(self, value: Any, run_id: str) -> bool:
        return isinstance(value, str | list | dict) and not self.store.genuine(value, run_id)

    def resolve(self, value: Any, run_id: str) -> Any:
        """``value`` with every reference of run ``run_id`` inside it replaced by the stored value (each read once).

        Anything shaped like a reference that stepgraph did not make for this run is plain data, left as it is.
        """
        cache: dict[str, Any] = {}

        def walk(v: Any) -> Any:
            if self.store.genuine(v, run_id):
                key = dumps(v)
                if key not in cache:
                    cache[key] = walk(self.store.get(v))
                return cache[key]
            if isinstance(v, dict):
                return {k: walk(c) for k, c in v.items()}
            if isinstance(v, list):
                return [walk(c) for c in v]
            return v

        return walk(value)


def has_refs(value: Any) -> bool:
    """True when ``value`` holds a reference anywhere."""
    if is_ref(value):
        return True
    if isinstance(value, dict):
        return any(has_refs(v) for v in value.values())
    if isinstance(value, list):
        return any(has_refs(v) for v in value)
    return False


_PENDING = "$stepgraph_pending"


def _field(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return prefix if path == WHOLE else f"{prefix}.{path}"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class _Pending(dict[str, str]):
    """A placeholder for a value about to be stored (its own type, so user data can never look like one)."""


def _defer(path: str, value: Any, pending: list[tuple[str, Any]]) -> dict[str, str]:
    pending.append((path, value))
    return _Pending({_PENDING: path})


def _is_pending(value: Any) -> bool:
    return isinstance(value, _Pending)


def _fill(value: Any, refs: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, dict):
        if isinstance(value, _Pending):
            return refs[value[_PENDING]]
        return {k: _fill(v, refs) for k, v in value.items()}
    return value
