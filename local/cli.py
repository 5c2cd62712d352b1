"""The ``stepgraph`` command line: create and validate graphs, start runs and watch them live.

It is a client of the HTTP API (the local stack by default, a deployed stack with ``--api``), so it works the
same against both; only pictures (``graphs diagram --svg/--html``) are drawn here, from the spec the API serves.
``main(argv, client=...)`` takes an injected ``httpx.Client`` so tests run it in-process.

Exit codes, for scripts: 0 success; 1 the run did not succeed or the spec is invalid; 2 bad usage or a local
file/JSON problem; 3 the API answered with an error or could not be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from statemachine.status import RUN_TERMINAL, NodeStatus, RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from rich.console import Console, RenderableType
    from tenacity.wait import wait_base

DEFAULT_API = "http://127.0.0.1:3000"
DEFAULT_API_KEY = "local-dev-key"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
LIVE_IDLE_POLLS = 20
"""Intervals without a pushed message after which ``runs watch`` reads the run itself (it may have ended)."""

STATUS_STYLE = {
    "PENDING": "dim",
    "RUNNING": "cyan",
    "WAITING": "bold blue",
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "SKIPPED": "yellow",
    "CANCELLED": "magenta",
    "TIMED_OUT": "bold red",
}
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


class CliError(Exception):
    """A problem the user can fix locally (a missing file, bad JSON in ``--input``): exit code 2."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ApiError(Exception):
    """The API answered with an error body ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            details = error.get("details")
            return cls(
                response.status_code,
                str(error.get("code") or response.reason_phrase),
                str(error.get("message") or ""),
                details if isinstance(details, list) else ([details] if details else []),
            )
        text = response.text.strip()[:500] or response.reason_phrase
        return cls(response.status_code, response.reason_phrase or "HTTPError", text)


THROTTLED = 429
UNAVAILABLE = {502, 503, 504}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class _TryAgain(Exception):
    """An answer worth retrying (throttled, or the service briefly unavailable)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Api:
    """A thin client of the stepgraph HTTP API: JSON in, JSON (or text) out, errors as ``ApiError``.

    Throttling (429) and connections that never reached the API are retried with full-jitter exponential
    backoff; 502/503/504 and read timeouts only for requests that are safe to repeat (reads, or writes that
    carry an ``Idempotency-Key``), so a retry never does a write twice.
    """

    def __init__(self, client: httpx.Client, *, attempts: int = 4, wait: wait_base | None = None) -> None:
        self.client = client
        self.attempts = attempts
        self.wait = wait if wait is not None else wait_random_exponential(multiplier=0.25, max=8)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.get("headers") or {}
        repeatable = method.upper() in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in headers)
        retried: tuple[type[BaseException], ...] = (_TryAgain, httpx.ConnectError)
        if repeatable:
            retried += (httpx.ReadTimeout, httpx.RemoteProtocolError)

        def send() -> httpx.Response:
            response = self.client.request(method, path, **kwargs)
            if response.status_code == THROTTLED or (repeatable and response.status_code in UNAVAILABLE):
                raise _TryAgain(response)
            return response

        try:
            response = Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=self.wait,
                retry=retry_if_exception_type(retried),
                reraise=True,
            )(send)
        except _TryAgain as exc:
            response = exc.response
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the API at {self.client.base_url}: {exc}. Is the local stack running (`make dev`)? "
                "Use --api or STEPGRAPH_API for another address.",
                EXIT_API,
            ) from exc
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)


# --------------------------------------------------------------------------------------------- local files


def read_json_file(path: str) -> tuple[Any, str]:
    """The parsed JSON of a file and its text; a parse error names ``file:line:col``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc


def parse_input(value: str | None) -> Any:
    """``--input``: inline JSON, or ``@file`` holding JSON."""
    if value is None:
        return {}
    if value.startswith("@"):
        return read_json_file(value[1:])[0]
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--input is not valid JSON (column {exc.colno}): {exc.msg}. Use '@file.json' for a file."
        ) from exc


def json_positions(text: str) -> dict[str, int]:
    """Map each path of a JSON document (``nodes[2].params.url``) to the offset where its value starts."""
    decoder = json.JSONDecoder()
    positions: dict[str, int] = {}
    whitespace = " \t\n\r"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in whitespace:
            i += 1
        return i

    def value(i: int, path: str) -> int:
        i = skip(i)
        positions[path] = i
        char = text[i]
        if char == "{":
            i = skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                key, i = json.decoder.scanstring(text, skip(i) + 1)  # type: ignore[attr-defined]
                i = skip(i) + 1  # past ':'
                i = skip(value(i, f"{path}.{key}" if path else key))
                if text[i] == "}":
                    return i + 1
                i += 1  # past ','
        if char == "[":
            i = skip(i + 1)
            if text[i] == "]":
                return i + 1
            index = 0
            while True:
                i = skip(value(i, f"{path}[{index}]"))
                index += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        _, end = decoder.raw_decode(text, i)
        return int(end)

    try:
        value(0, "")
    except (IndexError, ValueError):
        return positions
    return positions


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def resolve_loc(document: Any, loc: str) -> Any:
    """The value at a ``loc`` such as ``edges[0].when`` in a parsed document, or None."""
    current = document
    for part in loc.replace("[", ".[").split("."):
        if not part:
            continue
        try:
            current = current[int(part[1:-1])] if part.startswith("[") else current[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return current


# ------------------------------------------------------------------------------------------------ output


class Output:
    """Where the CLI prints: rich consoles for people, plain JSON with ``--json`` for scripts."""

    def __init__(self, as_json: bool, quiet: bool = False) -> None:
        from rich.console import Console

        self.as_json = as_json
        self.quiet = quiet
        # Piped output (scripts, files, tests) is not cut at 80 columns: ids must stay whole.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
        self.out: Console = Console(highlight=False, soft_wrap=True, width=width)
        self.err: Console = Console(stderr=True, highlight=False, soft_wrap=True, width=width)

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")

    def for_scripts(self, body: Any, identifier: Any) -> bool:
        """Print ``body`` as JSON (``--json``) or only ``identifier`` (``--quiet``); False: print for people."""
        if self.as_json:
            self.json(body)
        elif self.quiet:
            sys.stdout.write(f"{identifier}\n")
        return self.as_json or self.quiet

    def api_error(self, error: ApiError, spec_path: str | None = None, spec_text: str | None = None) -> None:
        self.err.print(f"[bold red]error[/] {error.code} (HTTP {error.status}): {escape(error.message)}")
        self.details(error.details, spec_path, spec_text)

    def details(self, details: list[Any], spec_path: str | None, spec_text: str | None) -> None:
        for line in format_details(details, spec_path, spec_text):
            self.err.print(f"  {escape(line)}", soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def format_details(details: list[Any], spec_path: str | None = None, spec_text: str | None = None) -> list[str]:
    """One line per error detail naming where it is: ``file:line:col: loc (node x): message``.

    A condition error's ``position`` (1-based line and col within the ``when`` text) is added to the file position
    of that string, and the condition is shown with a caret under the column.
    """
    positions = json_positions(spec_text) if spec_text else {}
    spec = None
    if spec_text:
        try:
            spec = json.loads(spec_text)
        except ValueError:
            spec = None
    lines: list[str] = []
    for detail in details:
        if not isinstance(detail, dict):
            lines.append(str(detail))
            continue
        loc = str(detail.get("loc") or "")
        where: list[str] = []
        position = detail.get("position") if isinstance(detail.get("position"), dict) else None
        found = nearest_loc(loc, positions)
        if spec_path and found is not None and spec_text is not None:
            line, col = line_col(spec_text, positions[found])
            if position and found == loc and isinstance(resolve_loc(spec, loc), str) and position.get("line", 1) == 1:
                col += int(position.get("col") or 1)  # the opening quote is at col; position col is 1-based
            where.append(f"{spec_path}:{line}:{col}:")
        if loc:
            where.append(loc)
        if detail.get("node"):
            where.append(f"(node {detail['node']})")
        if detail.get("edge"):
            where.append(f"(edge {detail['edge']})")
        if position and not spec_path:
            where.append(f"(line {position.get('line')}, col {position.get('col')})")
        message = str(detail.get("message") or detail.get("msg") or "")
        lines.append(f"{' '.join(where)}: {message}" if where else message)
        source = resolve_loc(spec, loc) if spec is not None and loc else None
        if position and isinstance(source, str) and "\n" not in source:
            lines.append(f"    {source}")
            lines.append("    " + " " * (int(position.get("col") or 1) - 1) + "^")
    return lines


def nearest_loc(loc: str, positions: dict[str, int]) -> str | None:
    """``loc`` if the file has it, else its nearest enclosing value (a missing field points at its object)."""
    while loc not in positions:
        if not loc:
            return None
        cut = max(loc.rfind("."), loc.rfind("["))
        loc = loc[:cut] if cut > 0 else ""
    return loc


def format_duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    if ms < 1000:
        return f"{int(ms)} ms"
    return f"{ms / 1000:.1f} s"


def items_of(body: Any, *keys: str) -> list[dict[str, Any]]:
    """The list in a listing response, whichever of the usual keys holds it."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in (*keys, "items"):
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


def spec_of(graph: Any) -> dict[str, Any]:
    """The spec inside a ``GET /graphs/{id}`` body (top-level ``spec`` or the latest version's)."""
    if not isinstance(graph, dict):
        return {}
    if isinstance(graph.get("spec"), dict):
        return dict(graph["spec"])
    versions = graph.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[-1], dict):
        return dict(versions[-1].get("spec") or {})
    return {}


# ------------------------------------------------------------------------------------------ the live view


class RunView:
    """The live view of a run: one row per node (status, attempts, iterations, duration) and a progress bar."""

    def __init__(self, run_id: str, spec: dict[str, Any]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.run_id = run_id
        self.tools = {n.get("id"): n.get("tool", "") for n in spec.get("nodes", []) if isinstance(n, dict)}
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        )
        self.task = self.progress.add_task(run_id, total=max(len(self.tools), 1))
        self.run: dict[str, Any] = {}

    def update(self, run: dict[str, Any]) -> None:
        self.run = run
        progress = run.get("progress") or {}
        total = progress.get("total") or max(len(self.tools), len(run.get("nodes") or {}), 1)
        status = run.get("status", "")
        style = STATUS_STYLE.get(status, "")
        self.progress.update(
            self.task,
            total=total,
            completed=progress.get("done") or 0,
            description=f"{self.run_id} [{style}]{status}[/]",
        )

    def table(self) -> RenderableType:
        from rich.table import Table

        nodes = dict(self.run.get("nodes") or {})
        with_items = any((node or {}).get("items_total") is not None for node in nodes.values())
        columns = ["node", "tool", "status", "attempts", "iterations", *(["items"] if with_items else []), "duration"]
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in [*columns, "error"]:
            table.add_column(column, no_wrap=column != "error", overflow="fold")
        order = list(self.tools) + [name for name in nodes if name not in self.tools]
        for name in order:
            node = nodes.get(name) or {}
            status = node.get("status", "PENDING")
            error = node.get("error") or {}
            items = [f"{node.get('items_done') or 0}/{node['items_total']}" if node.get("items_total") else ""]
            table.add_row(
                name,
                self.tools.get(name, ""),
                f"[{STATUS_STYLE.get(status, '')}]{status}[/]" + (" (cached)" if node.get("cached") else ""),
                str(node.get("attempts", "")) if node.get("attempts") else "",
                str(node.get("iterations", "")) if node.get("attempts") else "",
                *(items if with_items else []),
                format_duration(node.get("duration_ms")),
                escape(f"{error.get('code')}: {error.get('message')}") if error else "",
            )
        return table

    def waits(self) -> RenderableType | None:
        """What the run waits for: each node waiting for a person, its prompt, since when, and how to answer."""
        from rich.text import Text

        waiting = [w for w in (self.run.get("waiting") or []) if isinstance(w, dict)]
        if not waiting or self.run.get("status") in RUN_TERMINAL:
            return None
        lines = Text()
        for wait in waiting:
            node, tool = str(wait.get("node", "")), str(wait.get("tool", ""))
            lines.append("waiting ", style="bold blue")
            lines.append(f"{node} ({tool}) since {wait.get('since') or '?'}: ")
            lines.append(str(wait.get("prompt") or ""), style="bold")
            answer = "--approve | --reject [--comment TEXT]" if tool == "human.approval" else "--input JSON"
            lines.append(f"\n  answer: stepgraph runs respond {self.run_id} {node} {answer}\n", style="dim")
        return lines

    def __rich__(self) -> RenderableType:
        from rich.console import Group

        waits = self.waits()
        return Group(self.table(), *([waits] if waits is not None else []), self.progress)


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

    def accept(self, event: dict[str, Any]) -> bool:
        """True for an event not seen yet (numbered after the cursor), which then moves the cursor."""
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= self.cursor:
            return False
        self.cursor = seq
        return True

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
    idle = 0
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


def print_run_result(output: Output, run: dict[str, Any]) -> None:
    """The run's final status, its error and the outputs of its nodes (and the shared state if any)."""
    from rich.json import JSON
    from rich.panel import Panel

    status = run.get("status", "")
    finished = f"{run.get('run_id')} {status}"
    output.out.print(f"[{STATUS_STYLE.get(status, 'bold')}]{escape(finished)}[/]")
    trigger = run.get("trigger") or {}
    if trigger.get("type") == "schedule":
        output.out.print(
            f"[dim]started by schedule {escape(str(trigger.get('schedule_id')))} "
            f"for {escape(str(trigger.get('scheduled_time')))}[/]"
        )
    error = run.get("error")
    if error:
        output.out.print(f"[red]error[/] {escape(str(error.get('code')))}: {escape(str(error.get('message')))}")
    outputs = {
        name: node.get("output") for name, node in (run.get("nodes") or {}).items() if node.get("status") == "SUCCEEDED"
    }
    for title, value in (("outputs", outputs), ("state", run.get("state"))):
        if not value or (title == "state" and value == run.get("input")):
            continue
        shown = abbreviate(value)
        if shown != value:
            title += " (long values cut; --json prints them whole)"
        output.out.print(Panel(JSON.from_data(shown), title=title, title_align="left", expand=False))
    usage = run.get("usage") or {}
    if usage.get("llm_calls"):
        answered = {
            str(node.get("output", {}).get("answered_by", ""))
            for node in (run.get("nodes") or {}).values()
            if isinstance(node.get("output"), dict) and node["output"].get("answered_by")
        }
        stand_in = any("stand-in" in a for a in answered)
        output.out.print(
            f"model calls: {usage['llm_calls']}, {usage['input_tokens']} tokens in, {usage['output_tokens']} out, "
            f"about ${usage['estimated_cost_usd']:.6f} on Bedrock"
            + (
                " [yellow](answered locally by the deterministic stand-in model, not a language model)[/]"
                if stand_in
                else ""
            )
        )
    if run.get("console_url"):
        output.out.print(f"[dim]console: {run['console_url']}[/]")


def abbreviate(value: Any, text: int = 160, items: int = 10) -> Any:
    """``value`` with long strings and lists cut, so a terminal shows the shape of large outputs."""
    if isinstance(value, str) and len(value) > text:
        return f"{value[:text]}… ({len(value)} characters)"
    if isinstance(value, list):
        kept = [abbreviate(v, text, items) for v in value[:items]]
        return [*kept, f"… {len(value) - items} more"] if len(value) > items else kept
    if isinstance(value, dict):
        return {k: abbreviate(v, text, items) for k, v in value.items()}
    return value


def run_exit_code(run: dict[str, Any]) -> int:
    return EXIT_OK if run.get("status") == "SUCCEEDED" else EXIT_FAILED


# -------------------------------------------------------------------------------------------- commands


def plan_line(plan: dict[str, Any]) -> str:
    """One line of a graph's plan: size, transitions, calls, worst-case history and cost of a run."""

    def span(key: str) -> str:
        low, high = plan[key]["min"], plan[key]["max"]
        return f"{low:,}" if low == high else f"{low:,}-{high:,}"

    cost = plan["estimated_cost_usd"]
    return (
        f"{plan['states']} states, {plan['definition_bytes']:,} bytes; a run: {span('transitions')} transitions, "
        f"{span('lambda_invocations')} Lambda calls, at most {plan['history_events_max']:,} history events, "
        f"about ${cost['min']:g}-${cost['max']:g}"
    )


def cmd_graphs_create(api: Api, out: Output, args: argparse.Namespace) -> int:
    spec, text = read_json_file(args.file)
    try:
        created = api.post("/graphs", json=spec)
    except ApiError as error:
        out.api_error(error, args.file, text)
        return EXIT_API
    if out.for_scripts(created, created["graph_id"]):
        return EXIT_OK
    out.out.print(
        f"[green]created[/] {created['graph_id']} version {created.get('version', 1)}  {spec.get('name', '')}"
    )
    if created.get("state_machine_arn"):
        out.out.print(f"  state machine {created['state_machine_arn']}")
    if created.get("console_url"):
        out.out.print(f"  console       {created['console_url']}")
    if created.get("plan"):
        out.out.print(f"  plan          {plan_line(created['plan'])}", markup=False)
    out.out.print(f"  run it:       stepgraph runs start {created['graph_id']} --input '{{...}}' --wait")
    return EXIT_OK


def cmd_graphs_validate(api: Api, out: Output, args: argparse.Namespace) -> int:
    spec, text = read_json_file(args.file)
    try:
        result = api.post("/graphs/validate", json=spec)
    except ApiError as error:
        out.api_error(error, args.file, text)
        return EXIT_FAILED if error.status in (413, 422) else EXIT_API
    if out.as_json:
        out.json(result)
        return EXIT_OK if result.get("valid") else EXIT_FAILED
    if not result.get("valid"):
        errors = result.get("errors") or []
        out.err.print(f"[bold red]invalid[/] {escape(args.file)}: {len(errors)} error{'s' if len(errors) != 1 else ''}")
        out.details(errors, args.file, text)
        if result.get("plan"):
            out.err.print(f"plan: {plan_line(result['plan'])}", markup=False)
        return EXIT_FAILED
    out.out.print(
        f"[green]valid[/] {escape(args.file)}: {len(spec.get('nodes', []))} nodes, {len(spec.get('edges', []))} edges"
    )
    if result.get("plan"):
        out.err.print(f"plan: {plan_line(result['plan'])}", markup=False)
    if args.definition:
        out.out.print(json.dumps(result.get("definition"), indent=2), markup=False)
    elif result.get("diagram"):
        out.out.print(result["diagram"], markup=False)
    return EXIT_OK


def cmd_graphs_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    from rich.table import Table

    params = {"limit": args.limit} if args.limit else {}
    body = api.get("/graphs", params=params)
    if out.as_json:
        out.json(body)
        return EXIT_OK
    graphs = items_of(body, "graphs")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("graph_id", "name", "version", "created_at"):
        table.add_column(column, no_wrap=True)
    for graph in graphs:
        version = graph.get("latest_version", graph.get("version", ""))
        table.add_row(
            str(graph.get("graph_id", "")),
            escape(str(graph.get("name", ""))),
            str(version),
            str(graph.get("created_at", "")),
        )
    out.out.print(table if graphs else "[dim]no graphs yet: stepgraph graphs create examples/echo-chain.json[/]")
    return EXIT_OK


def cmd_graphs_update(api: Api, out: Output, args: argparse.Namespace) -> int:
    spec, text = read_json_file(args.file)
    try:
        published = api.request("PUT", f"/graphs/{args.graph}", json=spec)
    except ApiError as error:
        out.api_error(error, args.file, text)
        return EXIT_API
    if not out.for_scripts(published, published.get("version")):
        out.out.print(f"[green]published[/] {args.graph} version {published.get('version')}  (new runs use it)")
    return EXIT_OK


def cmd_graphs_delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.request("DELETE", f"/graphs/{args.graph}")
    if out.as_json:
        out.json(body)
    else:
        out.out.print(f"[magenta]deleted[/] {args.graph}")
    return EXIT_OK


def cmd_graphs_show(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.get(f"/graphs/{args.graph}")
    if out.as_json:
        out.json(body)
    else:
        out.out.print_json(data=body)
    return EXIT_OK


def diagram_of(api: Api, graph: str) -> tuple[str, dict[str, Any]]:
    """The Mermaid text and the spec of a graph id, or of a spec file (validated by the API, not created)."""
    if Path(graph).is_file():
        spec, _ = read_json_file(graph)
        result = api.post("/graphs/validate", json=spec)
        if not result.get("valid"):
            raise CliError(f"{graph} is not valid; run: stepgraph graphs validate {graph}", EXIT_FAILED)
        return str(result.get("diagram") or ""), spec
    body = api.get(f"/graphs/{graph}/diagram")
    if isinstance(body, dict):
        body = body.get("diagram") or ""
    return str(body), {}


def cmd_graphs_diagram(api: Api, out: Output, args: argparse.Namespace) -> int:
    mermaid, spec = diagram_of(api, args.graph)
    if not (args.svg or args.html):
        sys.stdout.write(mermaid if mermaid.endswith("\n") else mermaid + "\n")
        return EXIT_OK
    from local import render

    spec = spec or spec_of(api.get(f"/graphs/{args.graph}"))
    if args.svg:
        Path(args.svg).write_text(render.graph_to_svg(spec), encoding="utf-8")
    else:
        Path(args.html).write_text(render.graph_to_html(spec, mermaid), encoding="utf-8")
    out.err.print(f"[green]wrote[/] {escape(args.svg or args.html)}")
    return EXIT_OK


def resolve_graph(api: Api, out: Output, graph: str) -> str:
    """A graph id as given, or the id of a graph created from a spec file given instead."""
    if not Path(graph).is_file():
        return graph
    spec, text = read_json_file(graph)
    try:
        created = api.post("/graphs", json=spec)
    except ApiError as error:
        out.api_error(error, graph, text)
        raise
    if not out.quiet:
        out.err.print(f"[green]created[/] {created['graph_id']} from {escape(graph)}")
    return str(created["graph_id"])


def cmd_runs_start(api: Api, out: Output, args: argparse.Namespace) -> int:
    payload = parse_input(args.input)
    try:
        graph_id = resolve_graph(api, out, args.graph)
    except ApiError:
        return EXIT_API
    # A key of its own when none is given: the client's retries then start one run.
    headers = {"Idempotency-Key": args.idempotency_key or f"cli-{uuid.uuid4()}"}
    started = api.post(f"/graphs/{graph_id}/runs", json={"input": payload}, headers=headers)
    if not args.wait:
        if not out.for_scripts(started, started["run_id"]):
            out.out.print(f"[green]started[/] {started['run_id']} ({started.get('status', 'RUNNING')})")
            if started.get("console_url"):
                out.out.print(f"  console {started['console_url']}")
            out.out.print(f"  watch:  stepgraph runs watch {started['run_id']}")
        return EXIT_OK
    if not out.as_json:
        out.out.print(f"[green]started[/] {started['run_id']}")
    return finish_watch(api, out, started["run_id"], args.interval, ws_url_of(args, api))


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


def finish_watch(api: Api, out: Output, run_id: str, interval: float, ws_url: str | None = None) -> int:
    try:
        run = watch_run(api, out, run_id, interval, ws_url=ws_url)
    except KeyboardInterrupt:
        out.err.print(f"stopped watching; the run goes on: stepgraph runs watch {run_id}")
        return EXIT_INTERRUPTED
    if out.as_json:
        out.json(run)
    else:
        print_run_result(out, run)
    return run_exit_code(run)


def cmd_runs_watch(api: Api, out: Output, args: argparse.Namespace) -> int:
    return finish_watch(api, out, args.run, args.interval, ws_url_of(args, api))


def cmd_runs_show(api: Api, out: Output, args: argparse.Namespace) -> int:
    run = api.get(f"/runs/{args.run}")
    if out.as_json:
        out.json(run)
    else:
        view = RunView(args.run, {})
        view.update(run)
        out.out.print(view.table())
        waits = view.waits()
        if waits is not None:
            out.out.print(waits)
        print_run_result(out, run)
    return EXIT_OK if run.get("status") not in RUN_TERMINAL else run_exit_code(run)


def cmd_runs_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    from rich.table import Table

    params = {
        key: value for key, value in (("graph_id", args.graph), ("status", args.status), ("limit", args.limit)) if value
    }
    body = api.get("/runs", params=params)
    if out.as_json:
        out.json(body)
        return EXIT_OK
    runs = items_of(body, "runs")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("run_id", "graph_id", "version", "status", "progress", "started_at", "finished_at"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        status = str(run.get("status", ""))
        progress = run.get("progress") or {}
        table.add_row(
            str(run.get("run_id", "")),
            str(run.get("graph_id", "")),
            str(run.get("version", "")),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            f"{progress.get('done', '')}/{progress.get('total', '')}" if progress else "",
            str(run.get("started_at") or ""),
            str(run.get("finished_at") or ""),
        )
    out.out.print(table if runs else "[dim]no runs[/]")
    return EXIT_OK


def cmd_runs_respond(api: Api, out: Output, args: argparse.Namespace) -> int:
    if args.input is not None:
        if args.comment is not None:
            raise CliError("--comment goes with --approve or --reject (a human.approval step), not with --input")
        body: dict[str, Any] = {"input": parse_input(args.input)}
    else:
        body = {"approved": bool(args.approve)}
        if args.comment is not None:
            body["comment"] = args.comment
    answered = api.post(f"/runs/{args.run}/nodes/{args.node}/respond", json=body)
    if out.as_json:
        out.json(answered)
    else:
        output = answered.get("output") if isinstance(answered, dict) else None
        verdict = "answered"
        if isinstance(output, dict) and "approved" in output:
            verdict = "approved" if output["approved"] else "rejected"
        out.out.print(f"[green]{verdict}[/] {escape(args.node)} of {args.run}; the run goes on")
        out.out.print(f"  watch:  stepgraph runs watch {args.run}")
    return EXIT_OK


def cmd_runs_cancel(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.post(f"/runs/{args.run}/cancel")
    if out.as_json:
        out.json(body)
    else:
        status = (body or {}).get("status", "CANCELLED") if isinstance(body, dict) else "CANCELLED"
        out.out.print(f"[magenta]cancel requested[/] {args.run} ({status})")
    return EXIT_OK


def cmd_schedules_create(api: Api, out: Output, args: argparse.Namespace) -> int:
    payload = parse_input(args.input)
    body = {"expression": args.expression, "input": payload, "timezone": args.timezone}
    try:
        created = api.post(f"/graphs/{args.graph}/schedules", json=body)
    except ApiError as error:
        out.err.print(f"[bold red]error[/] {error.code} (HTTP {error.status}): {escape(error.message)}")
        for detail in error.details:
            position = detail.get("position") if isinstance(detail, dict) else None
            if isinstance(position, dict) and detail.get("loc") == "expression":
                field = f"{detail['field']}, " if detail.get("field") else ""
                out.err.print(f"  expression ({field}col {position.get('col')}): {escape(str(detail['message']))}")
                out.err.print(f"    {escape(args.expression)}")
                out.err.print("    " + " " * (int(position.get("col") or 1) - 1) + "^")
            else:
                out.details([detail], None, None)
        return EXIT_API
    if not out.for_scripts(created, created["schedule_id"]):
        out.out.print(
            f"[green]scheduled[/] {created['schedule_id']}: {escape(created['expression'])} ({created['timezone']})"
        )
        out.out.print(f"  next run at {created.get('next_run_at') or 'never'}")
    return EXIT_OK


def cmd_schedules_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    from rich.table import Table

    body = api.get(f"/graphs/{args.graph}/schedules")
    if out.as_json:
        out.json(body)
        return EXIT_OK
    schedules = items_of(body, "schedules")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("schedule_id", "expression", "timezone", "next_run_at", "input"):
        table.add_column(column, no_wrap=True)
    for schedule in schedules:
        table.add_row(
            str(schedule.get("schedule_id", "")),
            escape(str(schedule.get("expression", ""))),
            str(schedule.get("timezone", "")),
            str(schedule.get("next_run_at") or "never"),
            escape(json.dumps(abbreviate(schedule.get("input"), text=40))),
        )
    hint = f"[dim]no schedules: stepgraph schedules create {args.graph} --expression 'rate(1 hour)'[/]"
    out.out.print(table if schedules else hint)
    return EXIT_OK


def cmd_schedules_delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.request("DELETE", f"/graphs/{args.graph}/schedules/{args.schedule}")
    if out.as_json:
        out.json(body)
    else:
        out.out.print(f"[magenta]deleted[/] schedule {args.schedule} of {args.graph}")
    return EXIT_OK


def cmd_runs_resume(api: Api, out: Output, args: argparse.Namespace) -> int:
    resumed = api.post(f"/runs/{args.run}/resume")
    if not args.wait:
        if not out.for_scripts(resumed, resumed["run_id"]):
            out.out.print(f"[green]resumed[/] {resumed['run_id']} (resume {resumed.get('resumes')}, RUNNING)")
            if resumed.get("console_url"):
                out.out.print(f"  console {resumed['console_url']}")
            out.out.print(f"  watch:  stepgraph runs watch {resumed['run_id']}")
        return EXIT_OK
    if not out.as_json:
        out.out.print(f"[green]resumed[/] {resumed['run_id']} (resume {resumed.get('resumes')})")
    return finish_watch(api, out, resumed["run_id"], args.interval, ws_url_of(args, api))


def cmd_tools_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    from rich.table import Table

    body = api.get("/tools")
    if out.as_json:
        out.json(body)
        return EXIT_OK
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("tool", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("version", justify="right")
    table.add_column("description")
    for tool in items_of(body, "tools"):
        version = str(tool["version"]) if tool.get("kind") == "registered" and tool.get("version") else ""
        table.add_row(
            str(tool.get("name", "")),
            str(tool.get("kind", "builtin")),
            version,
            escape(str(tool.get("description", ""))),
        )
    out.out.print(table)
    return EXIT_OK


def _tool_body(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The registration body from the command line: the source file, the schema file, the settings."""
    with open(args.file, encoding="utf-8") as handle:
        source = handle.read()
    body: dict[str, Any] = {"name": args.name, "source": source, "description": args.description or ""}
    if args.schema:
        body["params_schema"], _ = read_json_file(args.schema)
    if args.timeout is not None:
        body["timeout_seconds"] = args.timeout
    return body, source


def cmd_tools_register(api: Api, out: Output, args: argparse.Namespace) -> int:
    body, _source = _tool_body(args)
    try:
        if args.command == "update":
            done = api.request("PUT", f"/tools/{args.name}", json=body)
        else:
            done = api.post("/tools", json=body)
    except ApiError as error:
        out.api_error(error, args.file, None)
        return EXIT_FAILED if error.status in (409, 413, 422) else EXIT_API
    if not out.for_scripts(done, f"{done['name']} {done['version']}"):
        verb = "published" if args.command == "update" else "registered"
        out.out.print(f"[green]{verb}[/] {done['name']} version {done['version']} (its own sandboxed function)")
        out.out.print(f'  use it in a node: {{"id": "...", "tool": "{done["name"]}", "params": {{...}}}}')
    return EXIT_OK


def cmd_tools_delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    try:
        body = api.request("DELETE", f"/tools/{args.name}")
    except ApiError as error:
        out.api_error(error, None, None)
        return EXIT_FAILED if error.status == 409 else EXIT_API
    if out.as_json:
        out.json(body)
    else:
        out.out.print(f"[magenta]deleted[/] {args.name}")
    return EXIT_OK


def cmd_tools_markdown(api: Api | None, out: Output, args: argparse.Namespace) -> int:
    table = tools_markdown()
    if not args.write:
        sys.stdout.write(table)
        return EXIT_OK
    path = Path(args.write)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {args.write}: {exc.strerror or exc}") from exc
    updated = replace_tools_block(text, table)
    if updated is None:
        raise CliError(f"{args.write} has no '{TOOLS_BEGIN}' ... '{TOOLS_END}' block")
    path.write_text(updated, encoding="utf-8")
    out.err.print(f"[green]updated[/] the tool table in {escape(args.write)}")
    return EXIT_OK


def replace_tools_block(text: str, table: str) -> str | None:
    """``text`` with its generated tool table replaced by ``table``; None when it has no such block."""
    start = text.find(TOOLS_BEGIN)
    end = text.find(TOOLS_END, start)
    if start < 0 or end < 0:
        return None
    return text[:start] + table.rstrip("\n") + text[end + len(TOOLS_END) :]


TOOLS_BEGIN = "<!-- tools:begin (generated by `stepgraph tools markdown`; a test keeps it in sync) -->"
TOOLS_END = "<!-- tools:end -->"


def schema_type(schema: dict[str, Any]) -> str:
    """A short type name of a JSON schema property (``string``, ``integer``, ``array``, ``any``)."""
    if "type" in schema:
        return str(schema["type"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = [schema_type(option) for option in schema[key]]
            return " or ".join(dict.fromkeys(k for k in kinds if k != "null")) or "null"
    if "$ref" in schema or "allOf" in schema:
        return "object"
    return "any"


def tools_markdown(tools: list[dict[str, Any]] | None = None) -> str:
    """The tool reference in Markdown, from the registry (or from ``GET /tools``-shaped descriptions)."""
    if tools is None:
        from functions.executor.tools import registry

        tools = registry.describe_all()
    lines = [TOOLS_BEGIN, "", "| tool | params | does |", "|---|---|---|"]
    for tool in sorted(tools, key=lambda t: str(t["name"])):
        schema = tool.get("params_schema") or {}
        required = set(schema.get("required") or [])
        params = []
        properties = dict(schema.get("properties") or {})
        for name in sorted(properties, key=lambda n: n not in required):  # required first, then schema order
            prop = properties[name]
            text = f"`{name}` {schema_type(prop)}"
            if name in required:
                text += " (required)"
            elif prop.get("default") is not None:
                text += f" = `{json.dumps(prop['default'])}`"
            params.append(text)
        if not params and schema.get("additionalProperties", True) is not False:
            params.append("any fields")
        cells = [f"`{tool['name']}`", ", ".join(params), str(tool.get("description", ""))]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append(
        "| `lambda:<name or ARN>` | any fields, passed to your function as its event | "
        "your own Lambda as an agent, invoked directly by the Task state |"
    )
    lines += ["", TOOLS_END, ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ parser


def live_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ws",
        help="the WebSocket API to follow the run on (env STEPGRAPH_WS; the stack's WebSocketUrl output; "
        "default ws://127.0.0.1:3001/ beside the local API)",
    )
    parser.add_argument("--poll", action="store_true", help="poll the event log instead of following the WebSocket")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api", default=argparse.SUPPRESS, help=f"API base URL (env STEPGRAPH_API, default {DEFAULT_API})"
    )
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, help="API key (env STEPGRAPH_API_KEY, default local-dev-key)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON (for scripts)"
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only the new id (graphs create, runs start without --wait)",
    )

    parser = argparse.ArgumentParser(
        prog="stepgraph",
        description="Create graphs of agents and tools, run them on Step Functions (or the local stack), watch runs.",
        epilog="Exit codes: 0 ok, 1 run failed or spec invalid, 2 usage, 3 API error or unreachable.",
        parents=[common],
    )
    groups = parser.add_subparsers(dest="group", metavar="{graphs,runs,schedules,tools}", required=True)

    graphs = groups.add_parser("graphs", help="create, validate, list and draw graphs").add_subparsers(
        dest="command", required=True
    )
    p = graphs.add_parser("create", parents=[common], help="validate, compile and create a graph from a spec file")
    p.add_argument("file")
    p.set_defaults(func=cmd_graphs_create)
    p = graphs.add_parser("validate", parents=[common], help="dry run: errors with positions, or the Mermaid diagram")
    p.add_argument("file")
    p.add_argument("--definition", action="store_true", help="print the compiled ASL instead of the diagram")
    p.set_defaults(func=cmd_graphs_validate)
    p = graphs.add_parser("list", parents=[common], help="list graphs")
    p.add_argument("--limit", type=int)
    p.set_defaults(func=cmd_graphs_list)
    p = graphs.add_parser("update", parents=[common], help="publish a new version of a graph from a spec file")
    p.add_argument("graph")
    p.add_argument("file")
    p.set_defaults(func=cmd_graphs_update)
    p = graphs.add_parser("delete", parents=[common], help="delete a graph and its state machines")
    p.add_argument("graph")
    p.set_defaults(func=cmd_graphs_delete)
    p = graphs.add_parser("show", parents=[common], help="a graph's spec and versions")
    p.add_argument("graph")
    p.set_defaults(func=cmd_graphs_show)
    p = graphs.add_parser("diagram", parents=[common], help="the Mermaid diagram of a graph id or spec file")
    p.add_argument("graph", help="a graph id, or a spec file (validated, not created)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--svg", metavar="FILE", help="write an SVG picture")
    target.add_argument("--html", metavar="FILE", help="write a standalone HTML page")
    p.set_defaults(func=cmd_graphs_diagram)

    runs = groups.add_parser("runs", help="start, watch, list, answer, cancel and resume runs").add_subparsers(
        dest="command", required=True
    )
    p = runs.add_parser("start", parents=[common], help="start a run of a graph id (or of a spec file, created first)")
    p.add_argument("graph")
    p.add_argument("--input", help="the run's input: JSON, or @file.json")
    p.add_argument("--wait", action="store_true", help="watch the run live until it ends; exit 1 unless it SUCCEEDED")
    p.add_argument("--idempotency-key", help="retries with the same key start one run")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    live_options(p)
    p.set_defaults(func=cmd_runs_start)
    p = runs.add_parser("watch", parents=[common], help="live view of a run until it ends; exit 1 unless it SUCCEEDED")
    p.add_argument("run")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    live_options(p)
    p.set_defaults(func=cmd_runs_watch)
    p = runs.add_parser("show", parents=[common], help="a run's status, nodes and outputs, once")
    p.add_argument("run")
    p.set_defaults(func=cmd_runs_show)
    p = runs.add_parser("list", parents=[common], help="list runs")
    p.add_argument("--graph", help="only runs of this graph id")
    p.add_argument(
        "--status",
        choices=sorted({*RUN_TERMINAL, RunStatus.RUNNING.value, NodeStatus.WAITING.value}),
        help="a run status, or WAITING: running runs with a step waiting for a person",
    )
    p.add_argument("--limit", type=int)
    p.set_defaults(func=cmd_runs_list)
    p = runs.add_parser(
        "respond", parents=[common], help="answer a step waiting for a person (human.approval, human.input)"
    )
    p.add_argument("run")
    p.add_argument("node")
    answer = p.add_mutually_exclusive_group(required=True)
    answer.add_argument("--approve", action="store_true", help="approve (human.approval)")
    answer.add_argument("--reject", action="store_true", help="reject (human.approval)")
    answer.add_argument("--input", help="the answer (human.input): JSON, or @file.json")
    p.add_argument("--comment", help="a comment with --approve or --reject")
    p.set_defaults(func=cmd_runs_respond)
    p = runs.add_parser("cancel", parents=[common], help="stop a running run")
    p.add_argument("run")
    p.set_defaults(func=cmd_runs_cancel)
    p = runs.add_parser(
        "resume", parents=[common], help="resume a FAILED, CANCELLED or TIMED_OUT run (succeeded nodes are kept)"
    )
    p.add_argument("run")
    p.add_argument("--wait", action="store_true", help="watch the run live until it ends; exit 1 unless it SUCCEEDED")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    live_options(p)
    p.set_defaults(func=cmd_runs_resume)

    schedules = groups.add_parser("schedules", help="start a graph's runs on a timetable").add_subparsers(
        dest="command", required=True
    )
    p = schedules.add_parser(
        "create", parents=[common], help="run a graph on rate(...), cron(...) or at(...) (EventBridge Scheduler syntax)"
    )
    p.add_argument("graph")
    p.add_argument("--expression", required=True, help="e.g. 'rate(5 minutes)', 'cron(0 9 ? * MON-FRI *)'")
    p.add_argument("--input", help="the input of every run it starts: JSON, or @file.json")
    p.add_argument("--timezone", default="UTC", help="IANA time zone the expression is read in (default UTC)")
    p.set_defaults(func=cmd_schedules_create)
    p = schedules.add_parser("list", parents=[common], help="a graph's schedules and their next run times")
    p.add_argument("graph")
    p.set_defaults(func=cmd_schedules_list)
    p = schedules.add_parser("delete", parents=[common], help="delete a schedule (its runs are kept)")
    p.add_argument("graph")
    p.add_argument("schedule")
    p.set_defaults(func=cmd_schedules_delete)

    tools = groups.add_parser("tools", help="built-in and registered tools").add_subparsers(
        dest="command", required=True
    )
    p = tools.add_parser("list", parents=[common], help="tool names, kinds, versions and descriptions")
    p.set_defaults(func=cmd_tools_list)
    for command, helptext in (
        ("register", "register a Python file defining run(params) as a tool (its own sandboxed function)"),
        ("update", "publish a new version of a registered tool from a Python file"),
    ):
        p = tools.add_parser(command, parents=[common], help=helptext)
        p.add_argument("file", help="Python source defining run(params) -> JSON value")
        p.add_argument("--name", required=True, help="the tool's name, like acme.slugify")
        p.add_argument("--schema", metavar="FILE", help="JSON Schema file of the params (default: any object)")
        p.add_argument("--description", help="what the tool does")
        p.add_argument("--timeout", type=int, metavar="SECONDS", help="the tool's timeout (default 30)")
        p.set_defaults(func=cmd_tools_register)
    p = tools.add_parser("delete", parents=[common], help="delete a registered tool (refused while graphs use it)")
    p.add_argument("name")
    p.set_defaults(func=cmd_tools_delete)
    p = tools.add_parser("markdown", parents=[common], help="the tool reference as Markdown, from the local registry")
    p.add_argument("--write", metavar="FILE", help="replace the generated block in FILE (e.g. README.md)")
    p.set_defaults(func=cmd_tools_markdown)
    return parser


def make_client(args: argparse.Namespace) -> httpx.Client:
    base = getattr(args, "api", None) or os.environ.get("STEPGRAPH_API") or DEFAULT_API
    key = getattr(args, "api_key", None) or os.environ.get("STEPGRAPH_API_KEY") or DEFAULT_API_KEY
    return httpx.Client(base_url=base, headers={"x-api-key": key, "user-agent": "stepgraph-cli"}, timeout=30.0)


def main(argv: Sequence[str] | None = None, client: httpx.Client | None = None) -> int:
    """Run the CLI; ``client`` (an ``httpx.Client`` on the API, with the key) replaces ``--api`` in tests."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    out = Output(as_json=bool(getattr(args, "json", False)), quiet=bool(getattr(args, "quiet", False)))
    own = client is None
    http = make_client(args) if client is None else client
    try:
        return int(args.func(Api(http), out, args))
    except ApiError as error:
        out.api_error(error)
        return EXIT_API
    except CliError as error:
        out.err.print(f"[bold red]error[/] {escape(error.message)}", soft_wrap=True)
        return error.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if own:
            http.close()


if __name__ == "__main__":
    sys.exit(main())
