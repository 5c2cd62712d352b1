"""The live watch of a run: its events as lines (pushed over the WebSocket API, or polled from the event log)
above the node table and progress bar, until the run ends."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from statemachine.status import RUN_TERMINAL
from stepgraph_cli.client import items_of, spec_of
from stepgraph_cli.command import arg
from stepgraph_cli.errors import EXIT_INTERRUPTED, ApiError
from stepgraph_cli.output import escape
from stepgraph_cli.view import RunView, print_run_result, run_exit_code

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

    from stepgraph_cli.client import Api
    from stepgraph_cli.output import Output

LIVE_IDLE_POLLS = 20
"""Intervals without a pushed message after which ``runs watch`` reads the run itself (it may have ended)."""
END_EVENT_WAIT_SECONDS = 5.0
"""How long polling goes on after the run has ended for its closing event (``RUN_SUCCEEDED``...): the event log
is written from the run's change a moment after the run itself."""

EVENT_STYLE = {
    "RUN_STARTED": "bold",
    "NODE_STARTED": "cyan",
    "NODE_RETRYING": "yellow",
    "NODE_WAITING": "bold blue",
    "NODE_SUCCEEDED": "green",
    "NODE_FAILED": "red",
    "NODE_SKIPPED": "yellow",
    "RUN_SUCCEEDED": "bold green",
    "RUN_FAILED": "bold red",
    "RUN_CANCELLED": "bold magenta",
    "RUN_TIMED_OUT": "bold red",
    "RUN_RESUMED": "bold cyan",
    "LOG": "dim",
}

WAIT = arg("--wait", action="store_true", help="watch the run live until it ends; exit 1 unless it SUCCEEDED")
WATCH_OPTIONS = (
    arg("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)"),
    arg(
        "--ws",
        help="the WebSocket API to follow the run on (env STEPGRAPH_WS; the stack's WebSocketUrl output; "
        "default ws://127.0.0.1:3001/ beside the local API)",
    ),
    arg("--poll", action="store_true", help="poll the event log instead of following the WebSocket"),
)
"""The arguments of every command that watches a run."""


def format_event(event: dict[str, Any]) -> str:
    at = str(event.get("at") or "")
    clock = at[11:23] if len(at) >= 19 else at
    kind = str(event.get("type") or "")
    style = EVENT_STYLE.get(kind)
    parts = [f"[dim]{clock}[/]", f"[{style}]{escape(f'{kind:<15}')}[/]" if style else escape(f"{kind:<15}")]
    message = str(event.get("message") or "")
    node = str(event.get("node") or "")
    if node and not message.startswith(node):
        parts.append(escape(node))
    if event.get("attempt") and kind.startswith("NODE") and "attempt" not in message:
        parts.append(f"[dim]attempt {event['attempt']}[/]")
    if message:
        parts.append(escape(message))
    return " ".join(parts)


class EventFollower:
    """Follows ``GET /runs/{id}/events`` from the last ``seq`` seen, yielding each event once."""

    def __init__(self, api: Api, run_id: str) -> None:
        self.api = api
        self.run_id = run_id
        self.cursor = 0
        """The ``seq`` of the last event yielded (the live socket moves it too)."""

        self.last_run_event: str | None = None
        """The type of the last ``RUN_...`` event yielded."""

    def accept(self, event: dict[str, Any]) -> bool:
        """True for an event not seen yet (numbered after the cursor), which then moves the cursor."""
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= self.cursor:
            return False
        self.cursor = seq
        if str(event.get("type") or "").startswith("RUN_"):
            self.last_run_event = str(event["type"])
        return True

    def closed(self, run: dict[str, Any]) -> bool:
        """The run has ended and its closing event (``RUN_<status>``, after any resume) has been yielded."""
        return run.get("status") in RUN_TERMINAL and self.last_run_event == f"RUN_{run.get('status')}"

    def poll(self) -> Iterator[dict[str, Any]]:
        for _ in range(1000):  # pages per poll; a run's log is bounded
            page = self.api.get(f"/runs/{self.run_id}/events", params={"after": self.cursor}) or {}
            events = items_of(page, "events")
            for event in events:
                if self.accept(event):
                    yield event
            following = page.get("next") if isinstance(page, dict) else None
            if following is None or not events:
                return


class LiveEvents:
    """A run's events pushed over the WebSocket API (``subscribe``), read on a thread into a queue."""

    def __init__(self, url: str, api_key: str | None, run_id: str, after: int = 0) -> None:
        self.url = url
        self.api_key = api_key
        self.run_id = run_id
        self.after = after
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.socket: Any = None
        self.error: str | None = None
        self._stack = contextlib.ExitStack()

    def open(self, timeout: float = 10.0) -> bool:
        """Connect and subscribe; False (with ``error``) when the socket cannot be had."""
        try:
            from websockets.sync.client import connect

            headers = {"x-api-key": self.api_key} if self.api_key else {}
            self.socket = self._stack.enter_context(connect(self.url, additional_headers=headers, open_timeout=timeout))
            self.socket.send(json.dumps({"action": "subscribe", "run_id": self.run_id, "after": self.after}))
        except Exception as exc:  # refused, unreachable, not a WebSocket server: poll instead
            self.error = f"{type(exc).__name__}: {exc}"
            return False
        threading.Thread(target=self._read, name="stepgraph-live", daemon=True).start()
        return True

    def _read(self) -> None:
        try:
            for frame in self.socket:
                message = json.loads(frame)
                if isinstance(message, dict):
                    self.queue.put(message)
                    if message.get("type") in ("run", "error"):
                        return
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.queue.put(None)

    def take(self, timeout: float) -> tuple[list[dict[str, Any]], bool]:
        """Messages that arrived within ``timeout`` (at least one, unless none came); True once the socket
        is done (a ``run`` or ``error`` message, or the connection dropped)."""
        messages: list[dict[str, Any]] = []
        try:
            first = self.queue.get(timeout=timeout)
        except queue.Empty:
            return messages, False
        pending: list[dict[str, Any] | None] = [first]
        while True:
            try:
                pending.append(self.queue.get_nowait())
            except queue.Empty:
                break
        for message in pending:
            if message is None:
                return messages, True
            messages.append(message)
        return messages, False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()


def watch_run(
    api: Api,
    output: Output,
    run_id: str,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
    ws_url: str | None = None,
) -> dict[str, Any]:
    """Follow a run until it ends: events as lines, the node table and progress bar live; return the run.

    With ``ws_url`` the events come over the WebSocket API as they happen; if the socket cannot be opened
    or drops, the events are polled from where the socket left off, so none is missed or repeated.
    """
    from rich.live import Live

    run = api.get(f"/runs/{run_id}")
    spec: dict[str, Any] = {}
    try:
        spec = spec_of(api.get(f"/graphs/{run['graph_id']}"))
    except (ApiError, KeyError, TypeError):
        spec = {}
    follower = EventFollower(api, run_id)
    view = RunView(run_id, spec)
    view.update(run)
    if output.as_json:
        while run.get("status") not in RUN_TERMINAL:
            sleep(interval)
            run = api.get(f"/runs/{run_id}")
        return dict(run)
    live_events: LiveEvents | None = None
    if ws_url and run.get("status") not in RUN_TERMINAL:
        live_events = LiveEvents(ws_url, api.client.headers.get("x-api-key"), run_id)
        if not live_events.open():
            output.err.print(f"[dim]live events unavailable ({escape(live_events.error or '')}); polling[/]")
            live_events = None
    idle = ended_polls = 0
    try:
        with Live(view, console=output.out, refresh_per_second=8, transient=False) as live:
            while True:
                if live_events is not None:
                    messages, done = live_events.take(interval)
                    idle = 0 if messages else idle + 1
                    if idle >= LIVE_IDLE_POLLS:  # nothing pushed for a while: make sure the run goes on
                        idle = 0
                        run = api.get(f"/runs/{run_id}")
                        view.update(run)
                        if run.get("status") in RUN_TERMINAL:
                            live_events.close()
                            live_events = None
                            continue
                    ended = False
                    for message in messages:
                        if message.get("type") == "event" and follower.accept(message.get("event") or {}):
                            live.console.print(format_event(message["event"]))
                        ended = ended or message.get("type") == "run"
                    if done and not ended:
                        output.err.print("[dim]live events interrupted; polling[/]")
                        live_events.close()
                        live_events = None
                    if messages or done:
                        run = api.get(f"/runs/{run_id}")
                        view.update(run)
                        live.refresh()
                    if ended:
                        for event in follower.poll():  # anything numbered after the run message (late logs)
                            live.console.print(format_event(event))
                        if run.get("status") in RUN_TERMINAL:
                            break
                        if live_events is not None:  # resumed meanwhile: the socket's subscription ended; poll on
                            live_events.close()
                            live_events = None
                    continue
                for event in follower.poll():
                    live.console.print(format_event(event))
                if run.get("status") in RUN_TERMINAL:
                    ended_polls += 1
                    if follower.closed(run) or ended_polls * max(interval, 0.05) > END_EVENT_WAIT_SECONDS:
                        break
                sleep(interval)
                run = api.get(f"/runs/{run_id}")
                view.update(run)
                live.refresh()
    finally:
        if live_events is not None:
            live_events.close()
    if not output.out.is_terminal:
        output.out.line()  # a file sees the view once, at the end, without its closing newline
    return dict(run)


def ws_url_of(args: argparse.Namespace, api: Api) -> str | None:
    """The WebSocket API to follow runs on: ``--ws``, ``STEPGRAPH_WS``, or the local stack's beside a local API."""
    if getattr(args, "poll", False):
        return None
    given = getattr(args, "ws", None) or os.environ.get("STEPGRAPH_WS")
    if given:
        return str(given)
    base = api.client.base_url
    if base.host in ("127.0.0.1", "localhost") and base.port == int(os.environ.get("STEPGRAPH_PORT", "3000")):
        return f"ws://{base.host}:{int(os.environ.get('STEPGRAPH_WS_PORT', '3001'))}/"
    return None


def finish_watch(api: Api, out: Output, run_id: str, args: argparse.Namespace) -> int:
    """Watch a run as the command's ``WATCH_OPTIONS`` say, then print its result; exit 1 unless it SUCCEEDED."""
    try:
        run = watch_run(api, out, run_id, args.interval, ws_url=ws_url_of(args, api))
    except KeyboardInterrupt:
        out.err.print(f"stopped watching; the run goes on: stepgraph runs watch {run_id}")
        return EXIT_INTERRUPTED
    if not out.for_scripts(run):
        print_run_result(out, run)
    return run_exit_code(run)
