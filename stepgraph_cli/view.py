"""What a run looks like to people: its node table and progress bar, what it waits for, and its result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statemachine.status import RUN_TERMINAL, NodeStatus, RunStatus
from stepgraph_cli.errors import EXIT_FAILED, EXIT_OK
from stepgraph_cli.output import abbreviate, escape, table

if TYPE_CHECKING:
    from rich.console import RenderableType

    from stepgraph_cli.output import Output

STATUS_STYLE: dict[str, str] = {
    NodeStatus.PENDING: "dim",
    NodeStatus.RUNNING: "cyan",
    NodeStatus.WAITING: "bold blue",
    NodeStatus.SUCCEEDED: "green",
    NodeStatus.FAILED: "bold red",
    NodeStatus.SKIPPED: "yellow",
    NodeStatus.CANCELLED: "magenta",
    RunStatus.TIMED_OUT: "bold red",
}


def styled(status: str) -> str:
    """A status in its colour (rich markup)."""
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]"


def format_duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    if ms < 1000:
        return f"{int(ms)} ms"
    return f"{ms / 1000:.1f} s"


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
        self.progress.update(
            self.task,
            total=total,
            completed=progress.get("done") or 0,
            description=f"{self.run_id} {styled(run.get('status', ''))}",
        )

    def table(self) -> RenderableType:
        nodes = dict(self.run.get("nodes") or {})
        with_items = any((node or {}).get("items_total") is not None for node in nodes.values())
        columns = ["node", "tool", "status", "attempts", "iterations", *(["items"] if with_items else []), "duration"]
        shown = table(*columns, overflow="fold")
        shown.add_column("error", overflow="fold")
        order = list(self.tools) + [name for name in nodes if name not in self.tools]
        for name in order:
            node = nodes.get(name) or {}
            status = node.get("status", NodeStatus.PENDING)
            error = node.get("error") or {}
            items = [f"{node.get('items_done') or 0}/{node['items_total']}" if node.get("items_total") else ""]
            shown.add_row(
                name,
                self.tools.get(name, ""),
                styled(status) + (" (cached)" if node.get("cached") else ""),
                str(node.get("attempts", "")) if node.get("attempts") else "",
                str(node.get("iterations", "")) if node.get("attempts") else "",
                *(items if with_items else []),
                format_duration(node.get("duration_ms")),
                escape(f"{error.get('code')}: {error.get('message')}") if error else "",
            )
        return shown

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
    nodes = (run.get("nodes") or {}).items()
    outputs = {name: node.get("output") for name, node in nodes if node.get("status") == NodeStatus.SUCCEEDED}
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


def run_exit_code(run: dict[str, Any]) -> int:
    return EXIT_OK if run.get("status") == RunStatus.SUCCEEDED else EXIT_FAILED
