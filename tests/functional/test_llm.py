"""``llm.converse`` end to end in the local cloud: the stand-in model answers Converse, Step Functions retries
Bedrock throttling natively, errors fail the node with Bedrock's code, and the run sums usage and cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functional_support import run_graph, wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


def llm_graph(**params: Any) -> dict[str, Any]:
    return {
        "name": "ask",
        "nodes": [
            {"id": "ask", "tool": "llm.converse", "params": {"prompt": "{{ input.question }}", **params}},
            {"id": "after", "tool": "util.echo", "params": {"answer": "{{ ask.text }}"}},
        ],
        "edges": [{"from": "ask", "to": "after"}],
    }


def test_a_model_answer_flows_into_the_next_node_with_usage_and_cost(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph asking a model about the run's input, on a model from the price table
    spec = llm_graph(model_id="amazon.nova-pro-v1:0", system="Be brief.", max_tokens=100, temperature=0.2)

    # WHEN it runs
    run = run_graph(api, spec, {"question": "What does Step Functions retry? It retries failed Task states."})

    # THEN the stand-in answered through Converse, with the prompt resolved and the settings passed on
    assert run["status"] == "SUCCEEDED", run
    answer = run["nodes"]["ask"]["output"]
    assert answer["text"] == "What does Step Functions retry? It retries failed Task states."
    assert answer["model_id"] == "amazon.nova-pro-v1:0"
    assert answer["answered_by"].startswith("stepgraph-local-stand-in (local stand-in for amazon.nova-pro-v1:0")
    assert answer["stop_reason"] == "end_turn"
    (call,) = cloud.bedrock.calls
    assert call["modelId"] == "amazon.nova-pro-v1:0"
    assert call["system"] == [{"text": "Be brief."}]
    assert call["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.2}
    assert run["nodes"]["after"]["output"] == {"answer": answer["text"]}
    # AND the run document sums the usage and prices it by the table (nova-pro: $0.0008 in, $0.0032 out per 1k)
    tokens_in, tokens_out = answer["usage"]["input_tokens"], answer["usage"]["output_tokens"]
    assert run["usage"] == {
        "llm_calls": 1,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "estimated_cost_usd": round(tokens_in / 1000 * 0.0008 + tokens_out / 1000 * 0.0032, 8),
    }


def test_a_run_without_model_steps_has_zero_usage(api: httpx.Client) -> None:
    run = run_graph(api, {"name": "plain", "nodes": [{"id": "a", "tool": "util.echo", "params": {"x": 1}}]})
    assert run["status"] == "SUCCEEDED"
    assert run["usage"] == {"llm_calls": 0, "input_tokens": 0, "output_tokens": 0, "estimated_cost_usd": 0.0}


def test_json_output_is_parsed_and_checked_against_the_schema(api: httpx.Client) -> None:
    # GIVEN a node asking for JSON matching a schema, and an edge routing on a field of it
    schema = {
        "type": "object",
        "required": ["verdict", "confidence"],
        "properties": {"verdict": {"enum": ["approve", "reject"]}, "confidence": {"type": "integer", "minimum": 1}},
    }
    spec = llm_graph(output="json", schema=schema)
    spec["nodes"].append({"id": "rejected", "tool": "util.echo", "params": {"v": "{{ ask.json.verdict }}"}})
    spec["edges"] = [
        {"from": "ask", "to": "after", "when": "ask.json.verdict == 'approve'"},
        {"from": "ask", "to": "rejected", "when": "ask.json.verdict == 'reject'"},
    ]

    # WHEN the question leans to "reject"
    run = run_graph(api, spec, {"question": "Reject or approve? The tests fail, so reject it, reject."})

    # THEN the parsed answer matches the schema and the run routes on it
    assert run["status"] == "SUCCEEDED", run
    parsed = run["nodes"]["ask"]["output"]["json"]
    assert parsed["verdict"] == "reject"
    assert isinstance(parsed["confidence"], int) and parsed["confidence"] >= 1
    assert run["nodes"]["rejected"]["output"] == {"v": "reject"}
    assert run["nodes"]["after"]["status"] == "SKIPPED"


def test_bedrock_throttling_is_retried_by_step_functions(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN Bedrock throttles the first call, and a node whose own policy allows no retry
    throttled: list[str] = []

    def refuse(request: dict[str, Any]) -> str | None:
        if not throttled:
            throttled.append(request["modelId"])
            return "ThrottlingException"
        return None

    cloud.bedrock.refuse = refuse
    spec = llm_graph()
    spec["nodes"][0]["retry"] = {"max_attempts": 0}
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    definition = api.get(f"/graphs/{created.json()['graph_id']}/definition").json()["definition"]

    # WHEN it runs
    started = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": {"question": "Hello there."}})
    run = wait_for_run(api, started.json()["run_id"], timeout=60, cloud=cloud)  # its events numbered too

    # THEN the Task's own Retry (not the tool, not the node's policy) retried the throttled call
    retriers = definition["States"]["ask"]["Retry"]
    assert any("Bedrock.ThrottlingException" in r["ErrorEquals"] for r in retriers)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["ask"]["attempts"] == 2
    assert len(cloud.bedrock.calls) == 2
    events = api.get(f"/runs/{run['run_id']}/events").json()["events"]
    assert [e["type"] for e in events if e.get("node") == "ask"][:3] == [
        "NODE_STARTED",
        "NODE_RETRYING",
        "NODE_STARTED",
    ]


def test_a_bedrock_validation_error_fails_the_node_with_its_code(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN Bedrock refuses the request as invalid
    cloud.bedrock.refuse = lambda request: "ValidationException"

    # WHEN the graph runs
    run = run_graph(api, llm_graph(), {"question": "Anything?"})

    # THEN the node fails at once with Bedrock's code (never retried), and the run fails
    assert run["status"] == "FAILED"
    node = run["nodes"]["ask"]
    assert node["status"] == "FAILED"
    assert node["attempts"] == 1
    assert node["error"]["code"] == "Bedrock.ValidationException"
    assert len(cloud.bedrock.calls) == 1


def test_unknown_models_and_bad_schemas_are_refused_when_the_graph_is_created(api: httpx.Client) -> None:
    # GIVEN a model id outside the price table, and a schema that is not JSON Schema
    unknown = api.post("/graphs", json=llm_graph(model_id="acme.no-such-model-v9"))
    # AND a priced model that the stack's BedrockModelIds (what IAM lets the executor invoke) leaves out
    not_allowed = api.post("/graphs", json=llm_graph(model_id="meta.llama3-1-8b-instruct-v1:0"))
    bad_schema = api.post("/graphs", json=llm_graph(output="json", schema={"type": "strnig"}))

    # THEN both are 422s naming the field
    assert unknown.status_code == 422, unknown.text
    assert "unknown model id 'acme.no-such-model-v9'" in unknown.text
    assert unknown.json()["error"]["details"][0]["loc"].startswith("nodes[0].params.model_id")
    assert not_allowed.status_code == 422, not_allowed.text
    assert "unknown model id 'meta.llama3-1-8b-instruct-v1:0'" in not_allowed.text
    assert bad_schema.status_code == 422, bad_schema.text
    assert "not a valid JSON Schema" in bad_schema.text


def test_the_tool_is_listed_with_its_schema(api: httpx.Client) -> None:
    described = api.get("/tools/llm.converse")
    assert described.status_code == 200
    params = described.json()["params_schema"]["properties"]
    assert {"prompt", "system", "model_id", "max_tokens", "temperature", "output", "schema"} <= set(params)
