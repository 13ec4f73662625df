"""``tasker orchestrator``: apply step results, create queued task requests, wake tasks whose backoff passed.

Any number of orchestrators may run on one database: results are taken from the queue with a visibility timeout
and applied under the task's row lock, each in one transaction with its acknowledgement (see ``engine.results``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from tasker.config import load_settings
from tasker.engine.finalizer import evaluate_task
from tasker.engine.results import Applied, apply_results, dead_letter_result
from tasker.engine.retention import RetentionPolicy, prune_periodically
from tasker.engine.schedules import Scheduler
from tasker.engine.staleness import StalenessDefaults, sweep_periodically
from tasker.engine.task_requests import consume_task_request
from tasker.messaging.factory import make_transport
from tasker.messaging.router import ORCHESTRATION_QUEUES, SCHEDULES_CHANNEL, STEP_RESULTS_QUEUE, TASK_REQUESTS_QUEUE
from tasker.messaging.transport import Message, Transport
from tasker.messaging.wakeup import IdleBackoff, Wakeups
from tasker.model.ids import uuid7
from tasker.model.states import TaskState
from tasker.store.db import Connection, create_pool
from tasker.store.steps import task_ready_many
from tasker.store.tasks import task_lock
from tasker.store.template_cache import TemplateCache
from tasker.telemetry import (
    STEP_RESULT_PROCESSING,
    STEP_RESULTS_PROCESSED,
    TASKS_COMPLETED,
    TASKS_FAILED,
    record_task_span,
)

log = logging.getLogger("tasker.orchestrator")

_Handler = Callable[[list[Message]], Awaitable[None]]


@dataclass(frozen=True)
class OrchestratorConfig:
    env: str = "development"
    staleness: StalenessDefaults = field(default_factory=StalenessDefaults)
    staleness_enabled: bool = True
    staleness_dry_run: bool = False
    staleness_batch_size: int = 100
    batch_size: int = 50
    concurrency: int = 8
    visibility_seconds: int = 30
    ready_poll_seconds: float = 1.0  # first poll interval for tasks whose backoff passed; backs off while idle
    ready_poll_max_seconds: float = 5.0
    idle_poll_max_seconds: float = 5.0  # queue polls only back up LISTEN/NOTIFY
    durable_commits: bool = False  # see store.db.create_pool: the orchestrator's hops are redone after a crash
    results_per_transaction: int = 1  # a batch is split in groups of at least this many
    result_max_failures: int = 5  # a result that failed this often is dead-lettered (archived, DLQ entry)
    result_failure_backoff_seconds: float = 1.0  # first retry of a failed result; doubles up to 60 s
    schedules_enabled: bool = True  # fire due schedules (engine.schedules)
    retention: RetentionPolicy | None = None  # prune finished tasks periodically (engine.retention); off: None


class Orchestrator:
    def __init__(self, url: str, config: OrchestratorConfig | None = None, *, transport: Transport | None = None):
        self.url = url
        self.config = config or OrchestratorConfig()
        self._owns_transport = transport is None
        self.transport: Transport = transport or make_transport(load_settings(), url)
        self.processor_uuid = uuid7()
        self.templates = TemplateCache(self.config.env)
        self.results_applied = 0
        self._stopping = False
        self._ready_wake = asyncio.Event()
        self._next_retry_at: float | None = None
        self._pool: AsyncConnectionPool[Connection] | None = None

    @property
    def pool(self) -> AsyncConnectionPool[Connection]:
        assert self._pool is not None, "orchestrator is not running"
        return self._pool

    async def run(self, stop: asyncio.Event) -> None:
        """Orchestrate until ``stop`` is set; then finish the batch in hand and return."""
        self._pool = create_pool(
            self.url,
            min_size=2,
            max_size=self.config.concurrency + 3,
            durable_commits=self.config.durable_commits,
            key_lookups=True,
            application_name="tasker-orchestrator",
        )
        await self._pool.open()
        scheduler = Scheduler(
            self.pool.connection, self.transport, env=self.config.env, processor_uuid=self.processor_uuid
        )
        wakeups = Wakeups(self.url, ORCHESTRATION_QUEUES, {SCHEDULES_CHANNEL: scheduler.wake})
        await wakeups.start()
        async with self.pool.connection() as conn:
            for queue in ORCHESTRATION_QUEUES:
                self.transport.on_message(queue, functools.partial(wakeups.notify_local, queue))
                await self.transport.ensure_queue(conn, queue)
        loops = [
            asyncio.create_task(self._consume(STEP_RESULTS_QUEUE, wakeups, self._apply_results), name="results"),
            asyncio.create_task(self._consume(TASK_REQUESTS_QUEUE, wakeups, self._create_tasks), name="requests"),
            asyncio.create_task(self._wake_ready_tasks(), name="ready"),
        ]
        if self.config.staleness_enabled:
            sweep = sweep_periodically(
                self.pool.connection,
                stop,
                defaults=self.config.staleness,
                dry_run=self.config.staleness_dry_run,
                batch_size=self.config.staleness_batch_size,
                processor_uuid=self.processor_uuid,
            )
            loops.append(asyncio.create_task(sweep, name="staleness"))
        if self.config.schedules_enabled:
            loops.append(asyncio.create_task(scheduler.run(stop), name="schedules"))
        if self.config.retention is not None:
            prune = prune_periodically(self.pool.connection, stop, self.config.retention)
            loops.append(asyncio.create_task(prune, name="retention"))
        log.info("orchestrator %s started", self.processor_uuid)
        try:
            await stop.wait()
        finally:
            self._stopping = True
            for queue in ORCHESTRATION_QUEUES:
                wakeups.notify_local(queue)
            self._ready_wake.set()
            await asyncio.gather(*loops, return_exceptions=True)
            await wakeups.stop()
            if self._owns_transport:
                await self.transport.close()
            await self._pool.close()
            log.info("orchestrator %s stopped after %d results", self.processor_uuid, self.results_applied)

    async def _consume(self, queue: str, wakeups: Wakeups, handle: _Handler) -> None:
        idle = IdleBackoff(maximum=self.config.idle_poll_max_seconds)
        while not self._stopping:
            wakeups.clear(queue)
            try:
                async with self.pool.connection() as conn:
                    messages = await self.transport.receive(
                        conn,
                        queue,
                        max_messages=self.config.batch_size,
                        visibility_seconds=self.config.visibility_seconds,
                    )
                if not messages:
                    await wakeups.wait(queue, idle.idle())
                    continue
                idle.found_work()
                await handle(messages)
            except Exception:
                log.exception("processing %s failed; messages will be retried after their visibility timeout", queue)
                await asyncio.sleep(0.5)

    async def _apply_results(self, messages: list[Message]) -> None:
        """Apply a batch split into groups by task (a task's results stay together), groups side by side."""
        groups: dict[int, list[Message]] = {}
        count = max(1, min(self.config.concurrency, len(messages) // self.config.results_per_transaction))
        for message in messages:
            key = hash(message.body.get("task_uuid")) % count
            groups.setdefault(key, []).append(message)
        await asyncio.gather(*(self._apply_group(group) for group in groups.values()))

    async def _apply_group(self, messages: list[Message]) -> None:
        try:
            await self._apply(messages)
        except Exception as exc:
            if len(messages) == 1:
                await self._failed(messages[0], exc)
                return
            log.warning("applying a batch of %d results failed; applying them one by one", len(messages))
            for message in messages:
                try:
                    await self._apply([message])
                except Exception as single:
                    await self._failed(message, single)

    async def _failed(self, message: Message, exc: Exception) -> None:
        """A result that could not be applied: retried with a backoff, and after ``result_max_failures`` failures
        taken out of the queue (archived) with a DLQ entry for its task, instead of failing forever."""
        log.error("applying step result %s failed: %s", message.msg_id, exc, exc_info=exc)
        failures = int(message.body.get("failures") or 0) + 1
        delay = min(self.config.result_failure_backoff_seconds * 2 ** (failures - 1), 60.0)
        try:
            async with self.pool.connection() as conn:
                failures = await self.transport.record_failure(
                    conn, STEP_RESULTS_QUEUE, message.msg_id, error=repr(exc), delay_seconds=delay
                )
                if failures >= self.config.result_max_failures:
                    await dead_letter_result(conn, self.transport, message, error=repr(exc), failures=failures)
        except Exception:
            log.exception("recording the failure of step result %s failed; it will be retried", message.msg_id)

    async def _apply(self, messages: list[Message]) -> None:
        started = time.time_ns()
        async with self.pool.connection() as conn:
            applied = await apply_results(
                conn, self.transport, self.templates, messages, processor_uuid=self.processor_uuid
            )
        finished = time.time_ns()
        self.results_applied += len(messages)
        self._observe(messages, applied, started, finished)
        for outcome in applied:
            if outcome.retry_in_seconds is not None:
                self._schedule_ready_check(outcome.retry_in_seconds)

    def _observe(self, messages: list[Message], applied: list[Applied], started: int, finished: int) -> None:
        """Metrics and spans of an applied batch (one span per message, in its task's trace)."""
        STEP_RESULT_PROCESSING.observe((finished - started) / 1e6)
        task_of = {m.body.get("step_uuid"): m.body.get("task_uuid") for m in messages}
        settled: dict[str, TaskState] = {}
        for outcome in applied:
            STEP_RESULTS_PROCESSED.labels(str(outcome.step_state)).inc()
            if outcome.task_state in (TaskState.COMPLETE, TaskState.BLOCKED_BY_FAILURES):
                settled[str(task_of.get(str(outcome.step_uuid)))] = outcome.task_state
        for task_state in settled.values():
            (TASKS_COMPLETED if task_state is TaskState.COMPLETE else TASKS_FAILED).inc()
        for message in messages:
            record_task_span(
                "step.result_processed",
                message.body["correlation_id"],
                started,
                finished,
                task_uuid=message.body.get("task_uuid"),
                step_uuid=message.body.get("step_uuid"),
                processor_uuid=self.processor_uuid,
                batch=len(messages),
            )

    async def _create_tasks(self, messages: list[Message]) -> None:
        for message in messages:
            async with self.pool.connection() as conn:
                await consume_task_request(
                    conn, self.transport, message, env=self.config.env, processor_uuid=self.processor_uuid
                )

    def _schedule_ready_check(self, delay_seconds: float) -> None:
        due = time.monotonic() + delay_seconds
        if self._next_retry_at is None or due < self._next_retry_at:
            self._next_retry_at = due
            self._ready_wake.set()

    async def _wake_ready_tasks(self) -> None:
        """Poll for tasks with ready steps (backoffs that passed), waking early for retries scheduled here.

        Retries this orchestrator scheduled wake it exactly on time; the poll (1 s, backing off to 5 s while it finds
        nothing) catches the rest: retries scheduled by an orchestrator that has since stopped, tasks created
        without their first steps enqueued."""
        idle = IdleBackoff(minimum=self.config.ready_poll_seconds, maximum=self.config.ready_poll_max_seconds)
        while not self._stopping:
            timeout = idle.idle()
            if self._next_retry_at is not None:
                timeout = min(timeout, max(self._next_retry_at - time.monotonic(), 0.0))
            self._ready_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready_wake.wait(), timeout)
            if self._stopping:
                return
            if self._next_retry_at is not None and self._next_retry_at <= time.monotonic():
                self._next_retry_at = None
            try:
                if await self._evaluate_ready_tasks():
                    idle.found_work()
            except Exception:
                log.exception("waking ready tasks failed")

    async def _evaluate_ready_tasks(self) -> int:
        async with self.pool.connection() as conn:
            task_uuids = await task_ready_many(conn, self.config.batch_size)
            for task_uuid in task_uuids:
                await self._evaluate(conn, task_uuid)
        return len(task_uuids)

    async def _evaluate(self, conn: Connection, task_uuid: UUID) -> None:
        async with conn.transaction():
            task = await task_lock(conn, task_uuid)
            template = await self.templates.get(conn, task["named_task_uuid"])
            await evaluate_task(
                conn,
                self.transport,
                task_uuid=task_uuid,
                state=TaskState(task["state"]),
                namespace=template.namespace_name,
                correlation_id=task["correlation_id"],
                metadata={"processor_uuid": self.processor_uuid, "correlation_id": task["correlation_id"]},
            )
