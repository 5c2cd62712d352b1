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

Modules are discovered on first use. Keep their top level light (pydantic only): import heavy modules
(httpx, jmespath) inside ``run`` so the executor's cold start stays small.
"""
