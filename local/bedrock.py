"""The local stand-in model: answers Amazon Bedrock's Converse API in-process, deterministically.

There is no Bedrock without an account, so the local cloud answers ``bedrock-runtime.Converse`` itself
(a ``before-call`` handler, as for Lambda invokes). It is not a language model: it summarizes by taking
the prompt's first sentences, and for JSON answers it fills the requested schema, choosing each ``enum``
value by how often the prompt mentions it. Every response carries the header ``x-stepgraph-stand-in``,
and ``llm.converse`` puts the stand-in's name in its output's ``model_id``, so a local result is never
mistaken for a model's. ``refuse`` injects Bedrock errors (``ThrottlingException``...) for tests.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
import botocore.handlers
from botocore.awsrequest import AWSResponse

from local.lambdas import _headers, _RawBody

if TYPE_CHECKING:
    from collections.abc import Callable

STAND_IN_NAME = "stepgraph-local-stand-in"
_EVENT = "before-call.bedrock-runtime.Converse"
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_WORD = re.compile(r"[A-Za-z0-9']+")
_ERROR_STATUS = {"ThrottlingException": 429, "ValidationException": 400, "ServiceUnavailableException": 503}


def _tokens(text: str) -> int:
    """A token count in the usual proportion (about four characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


def summarize(text: str, max_chars: int) -> str:
    """The first two sentences of the prompt's last paragraph that has any (what a summary would open with)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if _WORD.search(p)]
    body = paragraphs[-1] if paragraphs else text
    sentences = [s.strip() for s in _SENTENCE.findall(body) if _WORD.search(s)]
    return " ".join(sentences[:2])[:max_chars]


def fill(schema: Any, prompt: str, summary: str) -> Any:
    """A value matching ``schema``, derived from the prompt (deterministic)."""
    if not isinstance(schema, dict):
        return summary
    if schema.get("enum"):
        words = [w.lower() for w in _WORD.findall(prompt)]
        options = schema["enum"]
        return max(options, key=lambda o: (words.count(str(o).lower()), -options.index(o)))
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: fill(sub, prompt, summary) for name, sub in props.items()}
    if kind == "array":
        return [fill(schema.get("items", {"type": "string"}), prompt, summary)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 10)
        value = low + len(_WORD.findall(prompt)) % (int(high - low) + 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return summary


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The Converse response the stand-in gives to a request (parsed form, as botocore returns it)."""
    messages = request.get("messages") or []
    prompt = "\n\n".join(
        part.get("text", "") for m in messages for part in (m.get("content") or []) if isinstance(part, dict)
    )
    system = "\n".join(p.get("text", "") for p in (request.get("system") or []) if isinstance(p, dict))
    max_tokens = int((request.get("inferenceConfig") or {}).get("maxTokens") or 512)
    summary = summarize(prompt, 4000)
    if "JSON" in system:
        match = re.search(r"JSON Schema: (\{.*\})\s*$", system, re.S)
        schema = json.loads(match.group(1)) if match else {"type": "object", "properties": {"answer": {}}}
        text = json.dumps(fill(schema, prompt, summary))
    else:
        text = summary or "(the stand-in model has nothing to say about an empty prompt)"
    stop = "end_turn"
    if _tokens(text) > max_tokens:
        text, stop = text[: max_tokens * 4], "max_tokens"
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {
            "inputTokens": _tokens(system) + _tokens(prompt),
            "outputTokens": _tokens(text),
            "totalTokens": _tokens(system) + _tokens(prompt) + _tokens(text),
        },
        "metrics": {"latencyMs": 1},
    }


class StandInModel:
    """Answers Converse on boto3 sessions; ``calls`` lists the requests it saw; thread-safe."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._installed = False
        # Fault injection: request -> a Bedrock error code answered instead of the model, or None.
        self.refuse: Callable[[dict[str, Any]], str | None] | None = None

    def install(self) -> None:
        if self._installed:
            return
        botocore.handlers.BUILTIN_HANDLERS.append((_EVENT, self._on_converse))
        session = boto3.DEFAULT_SESSION
        if session is not None:
            session.events.register(_EVENT, self._on_converse, unique_id=f"stepgraph-bedrock-{id(self)}")  # type: ignore[arg-type]
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        with contextlib.suppress(ValueError):
            botocore.handlers.BUILTIN_HANDLERS.remove((_EVENT, self._on_converse))
        session = boto3.DEFAULT_SESSION
        if session is not None:
            session.events.unregister(_EVENT, unique_id=f"stepgraph-bedrock-{id(self)}")
        self._installed = False

    def _on_converse(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = params.get("body") or b"{}"
        request = json.loads(body if isinstance(body, (bytes, str)) else body.read())
        parts = str(params.get("url_path", "")).split("/")  # /model/<modelId>/converse
        request.setdefault("modelId", unquote(parts[2]) if len(parts) > 2 else "")
        with self._lock:
            self.calls.append(request)
        request_id = str(uuid.uuid4())
        refusal = self.refuse(request) if self.refuse is not None else None
        if refusal is not None:
            status = _ERROR_STATUS.get(refusal, 500)
            message = f"{refusal} (injected by the local cloud)"
            headers = {"x-amzn-errortype": refusal, "x-amzn-requestid": request_id}
            http = AWSResponse("https://bedrock.local/converse", status, _headers(headers), _RawBody(b"{}"))
            meta = {"RequestId": request_id, "HTTPStatusCode": status, "HTTPHeaders": headers, "RetryAttempts": 0}
            return http, {"Error": {"Code": refusal, "Message": message}, "ResponseMetadata": meta}
        parsed = answer(request)
        headers = {"x-amzn-requestid": request_id, "x-stepgraph-stand-in": STAND_IN_NAME}
        http = AWSResponse("https://bedrock.local/converse", 200, _headers(headers), _RawBody(b"{}"))
        parsed["ResponseMetadata"] = {
            "RequestId": request_id,
            "HTTPStatusCode": 200,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        }
        return http, parsed
