"""``python -m local.server`` (what ``make dev`` runs): the local stack on loopback.

- the API (the API Gateway shim in front of the API function) on http://127.0.0.1:3000;
- the local cloud's AWS endpoint (moto's server, sharing the in-process backends) on http://127.0.0.1:5000,
  so ``aws --endpoint-url http://127.0.0.1:5000 stepfunctions list-state-machines`` shows the stack;
- the WebSocket API (live run events) on ws://127.0.0.1:3001/ (``STEPGRAPH_WS_PORT``);
- the local scheduler's thread, which fires the stack's schedules (EventBridge Scheduler) on time;
- the examples' fixture server on http://127.0.0.1:8765, allowed through ``STEPGRAPH_HTTP_ALLOW_HOSTS``.

The API key is ``local-dev-key`` unless ``STEPGRAPH_API_KEY`` is set. The console is at /console;
``STEPGRAPH_CORS_ORIGINS`` (comma-separated origins) lets pages of other origins call the API. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import os
import signal
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from werkzeug.serving import make_server

from local.cloud import DEFAULT_API_KEY, LocalCloud

if TYPE_CHECKING:
    from collections.abc import Sequence
    from wsgiref.types import WSGIApplication

    from werkzeug.serving import BaseWSGIServer

LOG = logging.getLogger("local.server")
SHUTDOWN_LIMIT_SECONDS = 15.0
"""After Ctrl-C, how long stopping may take before the server prints every thread's stack and exits."""


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.server", description="Serve the local stepgraph stack.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STEPGRAPH_PORT", "3000")), help="API port")
    parser.add_argument(
        "--aws-port", type=int, default=int(os.environ.get("STEPGRAPH_AWS_PORT", "5000")), help="AWS endpoint port"
    )
    parser.add_argument(
        "--ws-port", type=int, default=int(os.environ.get("STEPGRAPH_WS_PORT", "3001")), help="WebSocket API port"
    )
    parser.add_argument("--fixtures-port", type=int, default=8765, help="fixture server port (0: any)")
    parser.add_argument("--no-fixtures", action="store_true", help="do not start the examples' fixture server")
    return parser.parse_args(argv)


def api_server(app: WSGIApplication, host: str, port: int) -> BaseWSGIServer:
    """The HTTP server in front of the API Gateway shim: a thread per request, so requests run concurrently
    as they would on several Lambda instances (the API handler is safe to run on threads)."""
    return make_server(host, port, app, threaded=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    api_key = os.environ.get("STEPGRAPH_API_KEY") or DEFAULT_API_KEY
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # Started as a background job, a process inherits SIGINT ignored and Python then installs no handler:
    # Ctrl-C (or a kill -INT) must stop the stack however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    with ExitStack() as stack:
        extra_env: dict[str, str] = {}
        fixtures_url = None
        if not args.no_fixtures:
            from local.fixture_server import ALLOW_ENV, FixtureServer, allow_hosts_with

            fixtures = stack.enter_context(FixtureServer(args.fixtures_port, args.host))
            fixtures_url = fixtures.url
            extra_env[ALLOW_ENV] = allow_hosts_with(fixtures.allow_host, os.environ.get(ALLOW_ENV))

        if os.environ.get("STEPGRAPH_CORS_ORIGINS"):
            extra_env["STEPGRAPH_CORS_ORIGINS"] = os.environ["STEPGRAPH_CORS_ORIGINS"]
        if args.ws_port:  # the console subscribes to live run events there
            extra_env.setdefault("STEPGRAPH_WS_URL", f"ws://{args.host}:{args.ws_port}/")
        cloud = stack.enter_context(LocalCloud(api_key=api_key, env=extra_env))

        from moto.server import ThreadedMotoServer

        moto_server = ThreadedMotoServer(ip_address=args.host, port=args.aws_port, verbose=False)
        moto_server.start()
        stack.callback(moto_server.stop)

        ws_url = cloud.serve_websockets(args.host, args.ws_port)
        cloud.scheduler.start()  # EventBridge Scheduler: fire the schedules moto stores, on time
        stack.callback(cloud.scheduler.stop)
        server = api_server(cloud.app, args.host, args.port)
        stack.callback(server.server_close)

        api_url = f"http://{args.host}:{args.port}"
        aws_url = f"http://{args.host}:{args.aws_port}"
        lines = [
            "",
            "stepgraph local stack is up",
            f"  API          {api_url}   (x-api-key: {api_key}; Swagger UI at {api_url}/docs)",
            f"  console      {api_url}/console   (in a browser; it asks for the key)",
            f"  WebSocket    {ws_url}    (live run events; ?api_key={api_key} or header x-api-key)",
            f"  AWS endpoint {aws_url}   (DynamoDB table {cloud.table_name}, Step Functions, IAM, Scheduler)",
            "  schedules    fired on time by the local scheduler (stepgraph schedules create GRAPH --expression ...)",
        ]
        if fixtures_url:
            lines.append(f"  fixtures     {fixtures_url}   (allowed for http.get)")
        lines += [
            "",
            "Try:",
            f"  curl -s {api_url}/health",
            f"  curl -s -H 'x-api-key: {api_key}' {api_url}/tools",
            f"  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={cloud.region} "
            f"aws --endpoint-url {aws_url} stepfunctions list-state-machines",
            "",
            "Ctrl-C stops.",
            "",
        ]
        print("\n".join(lines), flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # werkzeug's loop returns on Ctrl-C; this covers the rest
            server.serve_forever()
        print("\nstopping...", file=sys.stderr, flush=True)
        # Stopping is bounded (handlers get a grace period); should it ever hang, say where and exit.
        faulthandler.dump_traceback_later(SHUTDOWN_LIMIT_SECONDS, exit=True)
    print("stopped", file=sys.stderr, flush=True)
    return 0  # the dump stays armed: the interpreter's exit (joining threads) is part of stopping too


if __name__ == "__main__":
    raise SystemExit(main())
