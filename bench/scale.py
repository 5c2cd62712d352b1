"""A ``foreach`` over 10,000 items in the local cloud: wall time, items per second, history, and reading the run.

One run of a ``util.echo`` foreach (``max_concurrency`` 10) through the API. While it runs, ``GET /runs/{id}``
is timed every two seconds; once it has ended, ten more times, with the size of its answer and of one page of
``GET /runs/{id}/nodes/{node}/items``. History events are the run's own execution (a distributed Map keeps
each batch's events in its child execution). Local figures measure this machine's emulation, not AWS.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from bench.common import Figure, session

ITEMS = 10_000
QUICK_ITEMS = 2_000


def _spec() -> dict[str, Any]:
    return {
        "name": "scale",
        "nodes": [
            {
                "id": "each",
                "tool": "util.echo",
                "foreach": "{{ input.items }}",
                "params": {"i": "{{ item }}"},
                "max_concurrency": 10,
            }
        ],
    }


def figures(quick: bool = False) -> list[Figure]:
    items = QUICK_ITEMS if quick else ITEMS
    section = "scale"
    with session() as runner:
        graph_id = runner.create(_spec())
        started_at = time.perf_counter()
        started = runner.start(graph_id, {"items": list(range(items))})
        run_id, arn = started["run_id"], started["execution_arn"]
        while_running: list[float] = []
        done = threading.Event()

        def poll() -> None:
            while not done.wait(2.0):
                t0 = time.perf_counter()
                response = runner.api.get(f"/runs/{run_id}")
                if response.status_code == 200:
                    while_running.append(time.perf_counter() - t0)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        described = runner.wait_execution(arn, timeout=3000)
        wall = time.perf_counter() - started_at
        done.set()
        poller.join()
        status = described["status"]
        if status != "SUCCEEDED":
            why = f"{described.get('error')}: {str(described.get('cause'))[:200]}"
            return [Figure(section, f"foreach of {items:,} items", f"run {status}", "-", why)]
        runner.cloud.drain_events(30)
        after: list[float] = []
        body = b""
        for _ in range(10):
            t0 = time.perf_counter()
            response = runner.api.get(f"/runs/{run_id}")
            after.append(time.perf_counter() - t0)
            body = response.content
        node = response.json()["nodes"]["each"]
        t0 = time.perf_counter()
        page = runner.api.get(f"/runs/{run_id}/nodes/each/items", params={"limit": 1000})
        page_seconds = time.perf_counter() - t0
        order_ok = [i["output"]["i"] for i in page.json()["items"]] == list(range(min(1000, items)))
        events = len(runner.history(arn))
    how = f"{items:,} util.echo items, max_concurrency 10, through the API; DescribeExecution polled"
    return [
        Figure(section, f"foreach of {items:,} items: wall time", round(wall, 1), "s", how),
        Figure(section, f"foreach of {items:,} items: items per second", round(items / wall, 1), "items/s", how),
        Figure(
            section,
            f"foreach of {items:,} items: history events of the run",
            events,
            "events",
            f"GetExecutionHistory of the run's execution; AWS caps it at 25,000; {node['items_done']:,} items done",
        ),
        Figure(
            section,
            "GET /runs/{id} while it runs (max)",
            round(max(while_running) * 1000) if while_running else "-",
            "ms",
            f"{len(while_running)} requests, one every 2 s; median "
            f"{round(statistics.median(while_running) * 1000) if while_running else '-'} ms",
        ),
        Figure(
            section,
            "GET /runs/{id} once it ended (median)",
            round(statistics.median(after) * 1000),
            "ms",
            f"10 requests; answer {len(body):,} bytes (the item list is paged, not inlined)",
        ),
        Figure(
            section,
            "GET /runs/{id}/nodes/{node}/items, 1,000 items",
            round(page_seconds * 1000),
            "ms",
            f"one page of limit=1000: {len(page.content):,} bytes; outputs in item order: {order_ok}",
        ),
    ]
