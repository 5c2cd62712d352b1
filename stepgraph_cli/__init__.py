"""The ``stepgraph`` command line: create and validate graphs, start runs and watch them live.

It is a client of the HTTP API: the local stack by default, a deployed stack with ``--api``, the same way for
both. It is no part of the local cloud and never imports it. Two things are made here, not asked of the API:
pictures (``graphs diagram --svg/--html``, drawn from the spec the API serves) and the tool table
(``tools markdown``, generated from this checkout's tool registry). ``main(argv, client=...)`` takes an injected
``httpx.Client`` so tests run it in-process.

Modules: ``client`` (the HTTP client), ``spec_errors`` (error details placed in the spec file), ``output`` (the
one choice between people, ``--json`` and ``--quiet``), ``view`` and ``live`` (a run's view and its live watch),
``commands`` (one module per command group, each command declared with its arguments), ``tool_table``, ``page``
(the standalone diagram page) and ``app`` (the parser and ``main``).

Exit codes, for scripts: 0 success; 1 the run did not succeed or the spec is invalid; 2 bad usage or a local
file/JSON problem; 3 the API answered with an error or could not be reached; 130 interrupted.
"""

from stepgraph_cli.app import main
from stepgraph_cli.errors import EXIT_API, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_API", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]
