"""``tasker demo``: real workflows on the embedded PostgreSQL, end to end, in one command.

It registers the templates of ``examples/``, runs an orchestrator and a worker, creates a batch of tasks (orders
whose payment retries, refunds of which one fails for good, data pipelines,
spend approvals routed by a decision step, parallel batch imports), shows a progress bar while they run, then
prints each workflow's DAG (dynamically created steps included) with per-step timings and a summary.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from tasker.cli.common import handle_errors, run, settings

if TYPE_CHECKING:
    from rich.tree import Tree

    from tasker.model.requests import TaskRequest
    from tasker.store.db import Connection

console = Console()
NAMESPACES = ["ecommerce", "payments", "analytics", "approvals", "imports"]
STATE_STYLE = {"complete": "green", "error": "red", "blocked_by_failures": "red", "waiting_for_retry": "yellow"}


def examples_dir() -> Path:
    """``examples/`` of the working directory, else of the checkout this package was installed from."""
    for candidate in (Path.cwd() / "examples", Path(__file__).resolve().parents[3] / "examples"):
        if (candidate / "templates").is_dir():
            return candidate
    raise typer.BadParameter("no examples/ directory found: run the demo from a Tasker checkout")


def requests(orders: int) -> list[TaskRequest]:
    """The demo's batch: orders (every third with a flaky payment gateway), refunds (one too large), pipelines."""
    from tasker.model.requests import TaskRequest

    batch = [
        TaskRequest(
            namespace="ecommerce",
            name="order_fulfillment",
            context={
                "order_id": f"ord-{i:03d}",
                "customer": {"email": f"customer{i}@example.com"},
                "items": [
                    {"sku": "SKU-1", "quantity": 1 + i % 3, "price": 19.99},
                    {"sku": "SKU-2", "quantity": 1, "price": 5.0 * (i + 1)},
                ],
                "flaky_gateway": i % 3 == 0,
            },
            initiator="tasker-demo",
            idempotency_key=f"demo-order-{i}-{time.time_ns()}",
        )
        for i in range(orders)
    ]
    for i, amount in enumerate([25.0, 120.0, 9000.0]):
        batch.append(
            TaskRequest(
                namespace="payments",
                name="process_refund",
                initiator="tasker-demo",
                context={"payment_id": f"pay-{i}", "amount": amount},
                idempotency_key=f"demo-refund-{i}-{time.time_ns()}",
            )
        )
    for i, amount in enumerate([250.0, 2400.0, 12000.0]):  # a decision creates only the branches each needs
        batch.append(
            TaskRequest(
                namespace="approvals",
                name="spend_approval",
                initiator="tasker-demo",
                context={"amount": amount, "requester": f"employee-{i}"},
                idempotency_key=f"demo-approval-{i}-{time.time_ns()}",
            )
        )
    for i, rows in enumerate([1000, 0]):  # 4 parallel batch workers, then an empty import
        batch.append(
            TaskRequest(
                namespace="imports",
                name="inventory_import",
                initiator="tasker-demo",
                context={"rows": rows},
                idempotency_key=f"demo-import-{i}-{time.time_ns()}",
            )
        )
    for i in range(2):
        batch.append(
            TaskRequest(
                namespace="analytics",
                name="daily_report",
                initiator="tasker-demo",
                context={"day": f"2026-11-{20 + i}"},
                idempotency_key=f"demo-report-{i}-{time.time_ns()}",
            )
        )
    return batch


def _settled(state: str) -> bool:
    from tasker.model.states import TASK_TERMINAL, TaskState

    return TaskState(state) in TASK_TERMINAL or state == TaskState.BLOCKED_BY_FAILURES


async def _run(url: str, orders: int) -> None:
    import asyncio

    from tasker.engine.orchestrator import Orchestrator, OrchestratorConfig
    from tasker.store.db import connection
    from tasker.store.migrate import migrate
    from tasker.store.templates import template_register_paths
    from tasker.worker.process import Worker, WorkerConfig

    async with connection(url) as conn:
        await migrate(conn)
        registered = await template_register_paths(conn, examples_dir() / "templates")
        console.print(f"registered {len(registered)} templates from examples/templates")
        stop = asyncio.Event()
        services = [
            Orchestrator(url, OrchestratorConfig(env=settings().env)).run(stop),
            Worker(url, WorkerConfig(namespaces=NAMESPACES, concurrency=16, env=settings().env)).run(stop),
        ]
        running = [asyncio.create_task(s) for s in services]
        try:
            created = await _create_and_follow(conn, url, requests(orders))
        finally:
            stop.set()
            await asyncio.gather(*running)
        await _report(conn, created)


async def _create_and_follow(conn: Connection, url: str, batch: list[TaskRequest]) -> list[tuple[TaskRequest, UUID]]:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tasker.engine.task_requests import create_task
    from tasker.messaging.factory import make_transport
    from tasker.store.tasks import task_get

    transport = make_transport(settings(), url)
    created = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("workflows settled", total=len(batch))
        for request in batch:
            created.append((request, (await create_task(conn, transport, request, env=settings().env)).task_uuid))
        deadline = time.monotonic() + 60
        while True:
            states = [(await task_get(conn, task_uuid))["state"] for _, task_uuid in created]
            progress.update(bar, completed=sum(_settled(s) for s in states))
            if all(_settled(s) for s in states) or time.monotonic() > deadline:
                await transport.close()
                return created
            await asyncio.sleep(0.1)


def _done_at(step: dict[str, Any], task_created_at: Any) -> str:
    """When the step finished, counted from the task's creation ('-' while unfinished)."""
    if step["processed_at"] is None:
        return "-"
    return f"+{(step['processed_at'] - task_created_at).total_seconds() * 1000:.0f} ms"


async def _tree(conn: Connection, task_uuid: UUID) -> Tree:
    from rich.tree import Tree

    from tasker.store.tasks import task_edges, task_get, task_steps

    task = await task_get(conn, task_uuid)
    steps = {s["workflow_step_uuid"]: s for s in await task_steps(conn, task_uuid)}
    edges = await task_edges(conn, task_uuid)
    children: dict[UUID, list[UUID]] = {}
    for edge in edges:
        children.setdefault(edge["from_step_uuid"], []).append(edge["to_step_uuid"])
    has_parent = {edge["to_step_uuid"] for edge in edges}
    style = STATE_STYLE.get(task["state"], "white")
    root = Tree(f"[bold]{task['namespace_name']}/{task['task_name']}[/bold] [{style}]{task['state']}[/{style}]")

    def add(node: Tree, step_uuid: UUID, seen: set[UUID]) -> None:
        step = steps[step_uuid]
        colour = STATE_STYLE.get(step["state"], "white")
        done = _done_at(step, task["created_at"])
        label = f"{step['name']} [{colour}]{step['state']}[/{colour}] attempts {step['attempts']} · done {done}"
        if step_uuid in seen:
            node.add(f"{step['name']} (joined above)")
            return
        seen.add(step_uuid)
        branch = node.add(label)
        for child in children.get(step_uuid, []):
            add(branch, child, seen)

    seen: set[UUID] = set()
    for step_uuid in steps:
        if step_uuid not in has_parent:
            add(root, step_uuid, seen)
    return root


async def _report(conn: Connection, created: list[tuple[TaskRequest, UUID]]) -> None:
    from tasker.store.tasks import task_get, task_steps

    shown: set[str] = set()
    for request, task_uuid in created:
        task = await task_get(conn, task_uuid)
        kind = f"{request.name}:{task['state']}"
        if request.name in ("spend_approval", "inventory_import"):  # every variant: the DAG differs by input
            kind = f"{request.name}:{request.context}"
        if kind not in shown:
            shown.add(kind)
            console.print(await _tree(conn, task_uuid))
    table = Table("workflow", "tasks", "complete", "blocked / failed", "retried steps", "p50 duration")
    by_name: dict[str, list[dict[str, Any]]] = {}
    retried: dict[str, int] = {}
    for request, task_uuid in created:
        task = await task_get(conn, task_uuid)
        by_name.setdefault(request.name, []).append(task)
        retried[request.name] = retried.get(request.name, 0) + sum(
            1 for s in await task_steps(conn, task_uuid) if s["attempts"] > 1
        )
    for name, tasks in by_name.items():
        durations = sorted(
            (t["completed_at"] - t["created_at"]).total_seconds() * 1000 for t in tasks if t["completed_at"]
        )
        p50 = f"{durations[len(durations) // 2]:.0f} ms" if durations else "-"
        done = sum(t["state"] == "complete" for t in tasks)
        table.add_row(name, str(len(tasks)), str(done), str(len(tasks) - done), str(retried[name]), p50)
    console.print(table)
    console.print(
        "Blocked tasks wait for an operator: `tasker task list --status blocked_by_failures`, then "
        "`tasker task resolve-step` / `reset-step` / `complete-step` resumes them."
    )


@handle_errors
def demo(orders: Annotated[int, typer.Option(help="how many order workflows to run")] = 12) -> None:
    """Run example workflows end to end on the embedded PostgreSQL (or TASKER_DATABASE_URL)."""
    from tasker.store import embedded

    current = settings()
    started = time.perf_counter()
    url = embedded.database_url(current)
    where = f"embedded PostgreSQL 18 in {current.data_dir}" if embedded.is_embedded(current) else "TASKER_DATABASE_URL"
    console.print(f"database: {where} (ready in {time.perf_counter() - started:.2f}s)")
    root = str(examples_dir().parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # so `examples.handlers` imports
    run(_run(url, orders))
