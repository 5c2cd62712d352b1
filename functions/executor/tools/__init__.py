"""The built-in tools and their registry.

Registry API (``from functions.executor.tools import registry``)::

    registry.get(name) -> Tool              # raises registry.UnknownTool (a functions.errors.NotFoundError)
    registry.names() -> list[str]           # sorted; ``lambda:`` tools are not listed
    registry.params_model(name) -> type[BaseModel] | None
                                            # statemachine's ToolCatalog; None for an unknown tool,
                                            # a model accepting any object for ``lambda:<name or ARN>``
    registry.describe(name) -> {"name", "description", "params_schema", "output_schema"}
    registry.describe_all() -> list of the above, sorted by name

    tool.invoke(params: dict, ctx: ToolContext) -> dict   # validate params, run, validate output, JSON-ready

``ToolContext`` (``tools.base``): ``run_id``, ``node``, ``iteration``, ``attempt`` (1-based: the Step Functions
retry count + 1), ``log(message)`` (becomes a ``LOG`` event) and ``settings``. Tools fail by raising a subclass
of ``functions.errors.ToolError``; its ``.code`` is the error name Step Functions sees. Bad params raise
``InvalidParams``.

Adding a tool is one module in this package (helpers start with ``_``) that declares::

    NAME = "text.analyze"           # the name graph specs use
    DESCRIPTION = "one line"        # served by GET /tools
    class Params(BaseModel): ...    # params JSON schema, checked when a graph is created and at run time
    class Output(BaseModel): ...    # what the node's output looks like (always a JSON object)
    def run(params: Params, ctx: ToolContext) -> Output | dict: ...

Modules are discovered on first use. Name the module after the tool (``http.get`` -> ``http_get.py``) and
``registry.get`` imports that module alone, which is all an executor invocation needs. Keep the top level
light (pydantic only): import heavy modules (httpx, jmespath) inside ``run`` so cold starts stay small.

Built-in tools and how they chain (each output is a JSON object; see ``registry.describe`` for the schemas):

- ``http.get`` {url, headers?, query?, timeout_seconds?, max_bytes?, follow_redirects?}
  -> {status_code, headers, json, text, url, redirects, bytes}; only global addresses (``_netguard``).
- ``json.pick`` {data, fields: {name: JMESPath}} -> {name: value, ...}
- ``transform`` {value, expression} -> {result}
- ``text.analyze`` {text, top?, min_length?, stopwords?, strip_html?}
  -> {word_count, unique_words, character_count, sentence_count, average_sentence_words,
  top_words: [[word, count]], sentiment: {score, label, positive, negative}}
- ``chart.bar`` {series: [{label, value}] | {label: value} | [[label, value]], title?, sort?, limit?, ...}
  -> a Vega-Lite v5 spec ({"$schema", data, mark, encoding, ...})
- ``code.extract_functions`` / ``code.complexity`` / ``code.detect_issues`` / ``code.score`` {source, ...}
  -> {functions}, {functions, max_complexity, ...}, {issues, issue_count, counts}, {quality_score, grade, ...}
- ``code.suggest`` {source, issues?} -> {suggestions, revised_source, fixes_applied}: feed ``revised_source``
  back as the next round's source (``update_state``) and ``code.score`` rises.
- ``util.echo`` {any} -> the same object; ``util.sleep`` {seconds} -> {slept_seconds};
  ``util.fail`` {failures, error, message, output?} -> fails attempts 1..failures with code ``error``, then ``output``.
"""
