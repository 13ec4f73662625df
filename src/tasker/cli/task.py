"""``tasker task ...``: create, inspect, act on and follow tasks, through the API or straight on the database."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.markup import escape
from rich.text import Text

from tasker.cli import backend as backends
from tasker.cli.common import console, handle_errors, print_json, show_table, table, text_column, uuid_column, warn

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.tree import Tree

    from tasker.model import wire

app = typer.Typer(no_args_is_help=True, help="Tasks: create, list, inspect, act on steps, wait, visualize")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="why (kept in the step's history)")]
ByOption = Annotated[str, typer.Option("--by", help="who is acting")]

STATE_STYLE = {
    "complete": "green",
    "resolved_manually": "green",
    "error": "red",
    "blocked_by_failures": "red",
    "cancelled": "yellow",
    "in_progress": "cyan",
    "enqueued": "cyan",
    "steps_in_process": "cyan",
    "waiting_for_retry": "magenta",
}


@app.callback()
def options(
    api_url: Annotated[
        str | None, typer.Option("--api-url", envvar="TASKER_API_URL", help="use this REST API, not the database")
    ] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="TASKER_API_KEY", help="API key")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="TASKER_AUTH_TOKEN", help="bearer token")] = None,
) -> None:
    """Without --api-url (or TASKER_API_URL) the commands work on TASKER_DATABASE_URL directly."""
    backends.configure(api_url, api_key, token)


def _json_object(text: str, option: str) -> Any:
    from tasker.errors import InvalidTaskRequestError

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidTaskRequestError(f"{option} is not valid JSON: {exc}") from exc


def _dump(value: BaseModel | list[Any]) -> None:
    if isinstance(value, list):
        print_json([v.model_dump(mode="json") for v in value])
    else:
        print_json(value.model_dump(mode="json"))


def _styled(state: str) -> str:
    style = STATE_STYLE.get(state)
    return f"[{style}]{state}[/{style}]" if style else state


def failure(step: wire.StepResponse) -> tuple[str, str] | None:
    """(error type, message) of a step whose stored result is a failure (failed, or waiting to retry), else None.

    Workers store tasker-core's shape: ``{"success": false, "error": {"error_type", "message", ...}}``.
    """
    results = step.results
    if not isinstance(results, dict) or (results.get("success") is not False and not results.get("error")):
        return None
    error = results.get("error")
    error = error if isinstance(error, dict) else {}
    metadata = results.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    kind = str(error.get("error_type") or metadata.get("error_type") or "error")
    return kind, str(error.get("message") or results.get("error") or "no message stored")


def _result_cell(step: wire.StepResponse) -> str:
    failed = failure(step)
    if failed is not None:
        return f"[red]{escape(failed[0])}[/red]"
    value = step.results.get("result") if isinstance(step.results, dict) else step.results
    text = json.dumps(value, default=str)
    return escape(text if len(text) <= 60 else text[:59] + "…")


def _steps_table(steps: list[wire.StepResponse]) -> None:
    shown = table("step", "state", "attempts", "ready", uuid_column("step_uuid"), text_column("result"))
    for step in steps:
        shown.add_row(
            escape(step.name),
            _styled(step.current_state),
            f"{step.attempts}/{step.max_attempts}",
            "yes" if step.ready_for_execution else "",
            str(step.step_uuid),
            _result_cell(step),
        )
    show_table(shown)


def _show_failures(steps: list[wire.StepResponse]) -> None:
    """Why steps failed, one line each (never wrapped, never cut): the part of a task an operator needs first."""
    for step in steps:
        failed = failure(step)
        if failed is None:
            continue
        line = Text.assemble(
            (f"{step.name}", "bold"),
            f" ({step.step_uuid}) {step.current_state}, attempt {step.attempts}/{step.max_attempts}: ",
            (failed[0], "red"),
            f": {failed[1]}",
        )
        console.print(line, soft_wrap=True)


def _show_steps(steps: list[wire.StepResponse]) -> None:
    _steps_table(steps)
    _show_failures(steps)


def _show_task(task: wire.TaskResponse) -> None:
    console.print(
        f"task {task.task_uuid} {escape(task.namespace)}/{escape(task.name)}:{escape(task.version)}"
        f" [bold]{_styled(task.status)}[/bold]"
        f" ({task.completed_steps}/{task.total_steps} steps complete, {task.execution_status})",
        soft_wrap=True,
    )
    if task.steps:
        _show_steps(task.steps)


@app.command("create")
@handle_errors
def create(
    namespace: str,
    name: str,
    version: Annotated[str, typer.Option()] = "1.0.0",
    context: Annotated[str, typer.Option(help="the task's input as a JSON object")] = "{}",
    initiator: Annotated[str | None, typer.Option()] = None,
    source_system: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="repeatable")] = None,
    priority: Annotated[int, typer.Option(min=-100, max=100)] = 0,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a task from a registered template; its first steps are enqueued when this returns.

    Warns on stderr when no worker seems to serve the namespace (the task is created all the same).
    """
    from tasker.errors import InvalidTaskRequestError
    from tasker.model.requests import TaskRequest

    value = _json_object(context, "--context")
    if not isinstance(value, dict):
        raise InvalidTaskRequestError("--context must be a JSON object")
    request = TaskRequest(
        namespace=namespace,
        name=name,
        version=version,
        context=value,
        initiator=initiator,
        source_system=source_system,
        reason=reason,
        tags=tag or [],
        priority=priority,
        idempotency_key=idempotency_key,
    )
    task = backends.backend().create_task(request)
    for warning in task.warnings:
        warn(warning)
    if as_json:
        _dump(task)
    else:
        console.print(f"created task {task.task_uuid} ({task.status}, {task.total_steps} steps)", soft_wrap=True)


@app.command("get")
@handle_errors
def get(task_uuid: UUID, as_json: JsonOption = False) -> None:
    """Show a task and its steps."""
    task = backends.backend().get_task(task_uuid)
    if as_json:
        _dump(task)
    else:
        _show_task(task)


@app.command("list")
@handle_errors
def list_tasks(
    namespace: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="current task state")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=100)] = 25,
    as_json: JsonOption = False,
) -> None:
    """List tasks, newest first."""
    found = backends.backend().list_tasks(namespace=namespace, name=name, status=status, page=page, per_page=per_page)
    if as_json:
        _dump(found)
        return
    shown = table(uuid_column("task_uuid"), "template", "status", "steps", "created_at")
    for task in found.tasks:
        shown.add_row(
            str(task.task_uuid),
            escape(f"{task.namespace}/{task.name}:{task.version}"),
            _styled(task.status),
            f"{task.completed_steps}/{task.total_steps}",
            task.created_at.isoformat(timespec="seconds"),
        )
    show_table(shown)
    p = found.pagination
    console.print(f"page {p.page} of {p.total_pages} ({p.total_count} tasks)")


@app.command("cancel")
@handle_errors
def cancel(task_uuid: UUID, as_json: JsonOption = False) -> None:
    """Cancel a task that has not ended (its open steps are cancelled too)."""
    task = backends.backend().cancel_task(task_uuid)
    if as_json:
        _dump(task)
    else:
        console.print(f"task {task.task_uuid}: {_styled(task.status)}", soft_wrap=True)


@app.command("steps")
@handle_errors
def steps(task_uuid: UUID, as_json: JsonOption = False) -> None:
    """List a task's steps."""
    found = backends.backend().list_steps(task_uuid)
    if as_json:
        _dump(found)
    else:
        _show_steps(found)


@app.command("step")
@handle_errors
def step(task_uuid: UUID, step_uuid: UUID, as_json: JsonOption = False) -> None:
    """Show one step, and why it failed when it did."""
    found = backends.backend().get_step(task_uuid, step_uuid)
    if as_json:
        _dump(found)
    else:
        _show_steps([found])


def _act(task_uuid: UUID, step_uuid: UUID, action: wire.StepActionRequest, as_json: bool) -> None:
    found = backends.backend().step_action(task_uuid, step_uuid, action)
    if as_json:
        _dump(found)
    else:
        console.print(f"step {escape(found.name)} ({found.step_uuid}): {_styled(found.current_state)}", soft_wrap=True)


@app.command("reset-step")
@handle_errors
def reset_step(
    task_uuid: UUID, step_uuid: UUID, by: ByOption, reason: ReasonOption = None, as_json: JsonOption = False
) -> None:
    """Run a failed step again (attempts start over); the task resumes."""
    from tasker.model import wire

    _act(
        task_uuid, step_uuid, wire.StepActionRequest(action_type="reset_for_retry", reason=reason, reset_by=by), as_json
    )


@app.command("retry-failed")
@handle_errors
def retry_failed(task_uuid: UUID, as_json: JsonOption = False) -> None:
    """Reset every failed step of a task for retry at once; the task resumes."""
    task = backends.backend().retry_failed(task_uuid)
    if as_json:
        print_json(task.model_dump(mode="json"))
    else:
        console.print(f"task {task.task_uuid}: {_styled(task.status)}", soft_wrap=True)


@app.command("resolve-step")
@handle_errors
def resolve_step(
    task_uuid: UUID, step_uuid: UUID, by: ByOption, reason: ReasonOption = None, as_json: JsonOption = False
) -> None:
    """Mark a step resolved by hand; its dependents run and the task resumes."""
    from tasker.model import wire

    action = wire.StepActionRequest(action_type="resolve_manually", reason=reason, resolved_by=by)
    _act(task_uuid, step_uuid, action, as_json)


@app.command("complete-step")
@handle_errors
def complete_step(
    task_uuid: UUID,
    step_uuid: UUID,
    by: ByOption,
    result: Annotated[str, typer.Option("--result", help="the step's result as JSON")] = "null",
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Complete a step by hand with a result its dependents will see; the task resumes."""
    from tasker.model import wire

    data = {"result": _json_object(result, "--result")}
    action = wire.StepActionRequest(
        action_type="complete_manually", completion_data=data, reason=reason, completed_by=by
    )
    _act(task_uuid, step_uuid, action, as_json)


@app.command("audit")
@handle_errors
def audit(task_uuid: UUID, step_uuid: UUID, as_json: JsonOption = False) -> None:
    """The result audit trail of a step (one row per attempt that stored a result), newest first."""
    rows = backends.backend().step_audit(task_uuid, step_uuid)
    if as_json:
        _dump(rows)
        return
    shown = table("recorded_at", "success", "ms", "transition", uuid_column("worker_uuid"))
    for row in rows:
        shown.add_row(
            row.recorded_at.isoformat(timespec="milliseconds"),
            "[green]yes[/green]" if row.success else "[red]no[/red]",
            str(row.execution_time_ms if row.execution_time_ms is not None else ""),
            f"{row.from_state} → {row.to_state}",
            str(row.worker_uuid or ""),
        )
    show_table(shown)


def _finished(task: wire.TaskResponse) -> bool:
    from tasker.model.states import TASK_TERMINAL, TaskState

    return TaskState(task.status) in TASK_TERMINAL or task.status == TaskState.BLOCKED_BY_FAILURES


@app.command("wait")
@handle_errors
def wait(
    task_uuid: UUID,
    timeout: Annotated[float, typer.Option(help="seconds")] = 300.0,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 0.25,
    as_json: JsonOption = False,
) -> None:
    """Follow a task with a live progress display until it ends; exit 0 when complete, 1 otherwise."""
    from rich.live import Live
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    source = backends.backend()
    deadline = time.monotonic() + timeout
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=console
    )
    bar = progress.add_task(str(task_uuid), total=None)
    with Live(progress, console=console, transient=as_json, refresh_per_second=8):
        while True:
            task = source.get_task(task_uuid)
            progress.update(
                bar,
                total=task.total_steps or None,
                completed=task.completed_steps,
                description=f"{task.name} [bold]{_styled(task.status)}[/bold]",
            )
            if _finished(task) or time.monotonic() > deadline:
                break
            time.sleep(interval)
    if as_json:
        _dump(task)
    else:
        console.print(f"task {task_uuid}: {_styled(task.status)}", soft_wrap=True)
        _show_failures(task.steps)
    if task.status != "complete":
        raise typer.Exit(1)


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: its quotes and angle brackets as entity codes, on one line."""
    return " ".join(text.split()).replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(summary: wire.TaskSummaryResponse) -> str:
    """The task's DAG as a Mermaid flowchart, each node labelled and classed by its step's state; a failed step's
    label carries its error type, and a ``%%`` comment line after the chart its whole message."""
    ids = {s.name: f"s{i}" for i, s in enumerate(summary.steps)}
    lines = ["flowchart TD"]
    for s in summary.steps:
        failed = failure(s)
        extra = f"<br/>{_mermaid_text(failed[0])}" if failed else ""
        lines.append(f'    {ids[s.name]}["{s.name}<br/>{s.current_state}{extra}"]:::{s.current_state}')
    for edge in summary.edges:
        lines.append(f"    {ids[edge.from_step]} --> {ids[edge.to_step]}")
    colours = {"complete": "#c8e6c9", "error": "#ffcdd2", "in_progress": "#bbdefb", "enqueued": "#bbdefb"}
    for state, colour in colours.items():
        lines.append(f"    classDef {state} fill:{colour}")
    for s in summary.steps:
        failed = failure(s)
        if failed:
            lines.append(f"    %% {s.name} {s.current_state}: {failed[0]}: {' '.join(failed[1].split())}")
    return "\n".join(lines)


def tree(summary: wire.TaskSummaryResponse) -> Tree:
    """The DAG as a terminal tree from its roots (a step with several parents appears under each)."""
    from rich.tree import Tree

    children: dict[str, list[str]] = {}
    parents: set[str] = set()
    for edge in summary.edges:
        children.setdefault(edge.from_step, []).append(edge.to_step)
        parents.add(edge.to_step)
    states = {s.name: s.current_state for s in summary.steps}
    failures = {s.name: f[0] for s in summary.steps if (f := failure(s)) is not None}
    task = summary.task
    root = Tree(f"[bold]{escape(f'{task.namespace}/{task.name}:{task.version}')}[/bold] {_styled(task.status)}")

    def add(node: Tree, name: str) -> None:
        why = f" [red]({escape(failures[name])})[/red]" if name in failures else ""
        branch = node.add(f"{escape(name)} {_styled(states.get(name, '?'))}{why}")
        for child in children.get(name, []):
            add(branch, child)

    for s in summary.steps:
        if s.name not in parents:
            add(root, s.name)
    return root


@app.command("visualize")
@handle_errors
def visualize(
    task_uuid: UUID,
    output_format: Annotated[str, typer.Option("--format", help="mermaid, tree or both")] = "both",
    as_json: JsonOption = False,
) -> None:
    """Print the task's DAG with step states, as a Mermaid flowchart and as a tree, and why failed steps failed."""
    if output_format not in ("mermaid", "tree", "both"):
        raise typer.BadParameter(f"{output_format!r}: choose mermaid, tree or both", param_hint="--format")
    summary = backends.backend().task_summary(task_uuid)
    if as_json:
        print_json({"mermaid": mermaid(summary), "summary": summary.model_dump(mode="json")})
        return
    if output_format in ("mermaid", "both"):
        console.print(mermaid(summary), markup=False, highlight=False, soft_wrap=True)
    if output_format in ("tree", "both"):
        console.print(tree(summary))
        _show_failures(summary.steps)
