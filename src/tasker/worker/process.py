"""``tasker worker``: claim steps from namespace queues, run their handlers, store results.

Per message the worker does two transactions. The claim (batched over every message read at once) moves steps
``enqueued → in_progress`` under a fresh random claim token and loads their handler context. The result stores the
outcome with its audit row, sends the result message to the orchestrator and deletes the step message, all in one
commit, and only while the step is still in progress under that token. A worker that dies before it leaves the step
``in_progress`` with its message hidden only until the lease (the message's visibility timeout, renewed from a
thread of its own while the handler runs) runs out; then any worker takes it over and the attempt counts. A store
that fails (the database restarting, a dropped connection) is retried with backoff while the lease holds, so
finished work is not thrown away.

Delivery is at least once (a handler may run again after a crash, a lost lease or a rolled-back claim); a step's
state changes exactly once (the claim token and the attempt number fence every result and checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from tasker.config import load_settings
from tasker.engine.finalizer import KeepHere, KeptStep
from tasker.engine.results import Applied, AppliedBatch, apply_stored, completes_when_stored, completion_of
from tasker.messaging.factory import make_transport
from tasker.messaging.router import STEP_RESULTS_QUEUE, TASK_CANCELLED_CHANNEL, channel, worker_queue
from tasker.messaging.transport import ClaimingTransport, Message, Transport
from tasker.messaging.wakeup import IdleBackoff, Wakeups
from tasker.model.dynamic import worker_result
from tasker.model.events import DomainEvent
from tasker.model.ids import uuid7
from tasker.model.machines import StepEvent
from tasker.model.results import StepResult
from tasker.model.states import StepState, TaskState
from tasker.model.template import TaskTemplate
from tasker.store.db import Connection, Pending, create_pool, pipelined_transaction
from tasker.store.events import domain_event_store_with
from tasker.store.steps import (
    Continuation,
    HeldMessage,
    LateResult,
    StoredResults,
    results_need_planning,
    step_checkpoint_save_claimed,
    step_claim_by_token_send,
    step_claim_many,
    step_claim_view_many,
    step_outcome_many_send,
    step_readiness_many_send,
    step_result_late_record_many,
)
from tasker.store.template_cache import TemplateCache
from tasker.store.transitions import StepAudit, StepChange
from tasker.telemetry import (
    RESULT_STORES_FLOWN_AGAIN,
    STEP_EXECUTION,
    STEP_RESULTS_APPLIED_BY_WORKER,
    STEP_RESULTS_PROCESSED,
    STEPS_ACTIVE,
    STEPS_CLAIMED,
    STEPS_EXECUTED,
    STEPS_FAILED,
    STEPS_SUCCEEDED,
    TASKS_COMPLETED,
    TASKS_FAILED,
    record_task_span,
    task_span,
)
from tasker.worker.events import EventBus, StoredResult, default_bus, events_of, stored_events
from tasker.worker.executor import Execution, HandlerThreads, execute, is_async_handler
from tasker.worker.handler import CheckpointRejectedError, StepContext, checkpoint_yield_of
from tasker.worker.leases import Lease, LeaseKeeper
from tasker.worker.registry import HandlerRegistry, default_registry

log = logging.getLogger("tasker.worker")

MAX_CHECKPOINT_YIELDS = 100_000  # re-runs of a handler that returns checkpoint yields, in one attempt

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerConfig:
    namespaces: list[str]
    concurrency: int = 10
    lease_seconds: int = 30
    env: str = "development"
    default_timeout_seconds: float | None = 300.0
    idle_poll_max_seconds: float = 2.0
    durable_commits: bool = False  # see store.db.create_pool: a lost claim or result is redone by redelivery
    handler_allowed_modules: Sequence[str] | None = None  # import handlers only from these module prefixes
    store_retry_seconds: tuple[float, float] = (0.1, 2.0)  # backoff of a failed store: first delay, cap
    loop_stall_warning_seconds: float = 2.0  # warn when the event loop is blocked this long (an async handler)
    fast_path: bool = True  # apply successful results here when their task's lock is free (engine.results)


@dataclass
class Claim:
    message: Message
    step_uuid: UUID
    attempts: int
    row: dict[str, Any] = field(default_factory=dict)
    token: str | None = None  # the claim token written with the in_progress transition (None: not ours)
    received_at: float = field(default_factory=time.monotonic)
    lease: Lease | None = None
    context: StepContext | None = None
    handler: asyncio.Task[Execution] | None = None
    handler_is_async: bool = False


@dataclass
class NextClaims:
    """Steps a store transaction claimed for this worker (the fast path's continuation: the steps its results made
    ready, claimed in that transaction instead of sent, woken up for and read back); started once it has committed.
    ``reserved`` slots are held for them meanwhile, so the consumers do not overfill the worker."""

    reserved: int = 0
    taken: list[tuple[str, float, Pending[list[dict[str, Any]]]]] = field(default_factory=list)

    def clear(self) -> None:
        self.reserved = 0
        self.taken.clear()


def new_claim_token() -> str:
    """A claim's fence: random, so a claim that a database crash rolled back is never issued again."""
    return uuid.uuid4().hex


class Worker:
    def __init__(
        self,
        url: str,
        config: WorkerConfig,
        *,
        registry: HandlerRegistry | None = None,
        transport: Transport | None = None,
        event_bus: EventBus | None = None,
    ) -> None:
        self.url = url
        self.config = config
        self.registry = registry or default_registry
        self._owns_transport = transport is None
        self.transport: Transport = transport or make_transport(load_settings(), url)
        self.events = event_bus or default_bus  # in-process subscribers of fast domain events
        self.worker_uuid = uuid7()
        self.queues = [worker_queue(ns) for ns in config.namespaces]
        self.templates = TemplateCache(config.env)
        self._known_templates: dict[UUID, TaskTemplate] = {}
        self.running: dict[UUID, Claim] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._reserved = 0  # slots held for steps claimed in a store transaction that has not committed yet
        self.steps_done = 0
        self._slot_freed = asyncio.Event()
        self._completions: asyncio.Queue[tuple[str, Claim, Execution, asyncio.Future[None]]] = asyncio.Queue()
        self._stopping = False
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._wakeups: Wakeups | None = None
        self._drained: set[str] = set()
        self._threads = HandlerThreads(config.concurrency)
        self._allowed = list(config.handler_allowed_modules) if config.handler_allowed_modules is not None else None
        self.leases = LeaseKeeper(
            url,
            self.transport,
            lease_seconds=config.lease_seconds,
            stall_warning_seconds=config.loop_stall_warning_seconds,
        )

    @property
    def pool(self) -> AsyncConnectionPool[Connection]:
        assert self._pool is not None, "worker is not running"
        return self._pool

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish the running handlers and return."""
        self._pool = create_pool(
            self.url,
            min_size=2,
            max_size=self.config.concurrency + 3,
            durable_commits=self.config.durable_commits,
            key_lookups=True,
            application_name="tasker-worker",
        )
        await self._pool.open()
        wakeups = Wakeups(
            self.url,
            self.queues,
            signals={TASK_CANCELLED_CHANNEL: self._task_cancelled},
            application_name="tasker-worker-wakeups",
        )
        await wakeups.start()
        self._wakeups = wakeups
        for queue in self.queues:
            self.transport.on_message(queue, functools.partial(wakeups.notify_local, queue))
        async with self.pool.connection() as conn:
            for queue in [*self.queues, STEP_RESULTS_QUEUE]:  # results go there even before an orchestrator runs
                await self.transport.ensure_queue(conn, queue)
        self.leases.start()
        loops = [asyncio.create_task(self._consume(q, wakeups), name=f"consume-{q}") for q in self.queues]
        loops.append(asyncio.create_task(self.leases.heartbeat(), name="heartbeat"))
        completer = asyncio.create_task(self._complete(), name="completer")
        log.info("worker %s started on %s", self.worker_uuid, ", ".join(self.queues))
        try:
            await stop.wait()
        finally:
            self._stopping = True
            for queue in self.queues:
                wakeups.notify_local(queue)
            await asyncio.gather(*loops[:-1], return_exceptions=True)
            while self._handlers:  # a handler's store may start the next steps' handlers: wait for those too
                await asyncio.gather(*self._handlers, return_exceptions=True)
            for background in (loops[-1], completer):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            await asyncio.to_thread(self.leases.stop)
            await wakeups.stop()
            if self._owns_transport:
                await self.transport.close()
            await self._pool.close()
            self._threads.shutdown()
            log.info("worker %s stopped after %d steps", self.worker_uuid, self.steps_done)

    def _release(self, following: NextClaims) -> None:
        """Give back the slots held for a store's claims (started by now, or rolled back), waking waiting
        consumers."""
        if following.reserved:
            self._reserved -= following.reserved
            self._slot_freed.set()
        following.clear()

    def _free_slots(self) -> int:
        return self.config.concurrency - len(self.running) - self._reserved

    def _start(self, queue: str, claims: list[Claim]) -> None:
        """Run the handlers of claimed steps, each holding its lease."""
        for claim in claims:
            self.running[claim.step_uuid] = claim
            label = f"{claim.row.get('name')} ({claim.step_uuid})"
            claim.lease = self.leases.hold(
                claim.step_uuid, claim.message.queue, claim.message.msg_id, label, claim.received_at
            )
            task = asyncio.create_task(self._run(queue, claim))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _consume(self, queue: str, wakeups: Wakeups) -> None:
        idle = IdleBackoff(maximum=self.config.idle_poll_max_seconds)
        while not self._stopping:
            free = self._free_slots()
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            wakeups.clear(queue)
            try:
                claims = await self._receive_and_claim(queue, free)
            except psycopg.OperationalError as exc:  # the database is restarting or unreachable: no traceback
                log.warning("claiming from %s failed (%s); retrying", queue, exc)
                await asyncio.sleep(0.5)
                continue
            except Exception:
                log.exception("claiming from %s failed; retrying", queue)
                await asyncio.sleep(0.5)
                continue
            if not claims:
                if queue in self._drained:
                    await wakeups.wait(queue, idle.idle())
                else:  # a full read of stale messages (acknowledged now): more may be waiting behind them
                    idle.found_work()
                continue
            idle.found_work()
            self._start(queue, claims)
            if queue in self._drained:  # fewer messages than free slots: the queue is empty, wait for a signal
                await wakeups.wait(queue, idle.idle())

    async def _receive_and_claim(self, queue: str, free: int) -> list[Claim]:
        if isinstance(self.transport, ClaimingTransport):
            return await self._receive_and_claim_at_once(self.transport, queue, free)
        async with self.pool.connection() as conn:
            received_at = time.monotonic()  # the lease (visibility timeout) runs from here
            messages = await self.transport.receive(
                conn, queue, max_messages=free, visibility_seconds=self.config.lease_seconds
            )
            self._note_drained(queue, len(messages) < free)
            if not messages:
                return []
            fresh = [m for m in messages if m.read_count == 1]
            claims = await self._claim_fresh(conn, fresh) if fresh else []
            claimed = {c.message.msg_id for c in claims}
            others = [m for m in messages if m.msg_id not in claimed]
            if others:  # redeliveries and lost races: look at each step before deciding
                claims += await self._claim_others(conn, queue, others)
            for claim in claims:
                claim.received_at = received_at
            return claims

    async def _receive_and_claim_at_once(self, transport: ClaimingTransport, queue: str, free: int) -> list[Claim]:
        """Read and claim first deliveries in one statement; redeliveries and lost races go the long way."""
        async with self.pool.connection() as conn:
            received_at = time.monotonic()  # the lease (visibility timeout) runs from here
            rows = await transport.receive_and_claim(
                conn,
                queue,
                max_messages=free,
                visibility_seconds=self.config.lease_seconds,
                metadata={"worker_uuid": str(self.worker_uuid)},
            )
            self._note_drained(queue, len(rows) < free)
            return await self._claims_read(conn, queue, received_at, rows)

    async def _claims_read(
        self, conn: Connection, queue: str, received_at: float, rows: list[dict[str, Any]], *, method: str = "fresh"
    ) -> list[Claim]:
        """The claims of a committed read-and-claim (``receive_and_claim``): the won ones, then those of the
        redeliveries and lost races among the messages read, which are looked at one by one."""
        claims = self._claims_won(queue, received_at, rows, method)
        others = [Message(row["msg_id"], queue, row["message"], row["read_ct"]) for row in rows if not row["claimed"]]
        if others:  # redeliveries and lost races; claims already won run whatever happens to these
            for claim in await self._claim_others(conn, queue, others):
                claim.received_at = received_at
                claims.append(claim)
        return claims

    def _claims_won(self, queue: str, received_at: float, rows: list[dict[str, Any]], method: str) -> list[Claim]:
        won = [row for row in rows if row["claimed"]]
        self._count_claims(won, method)
        return [
            Claim(
                Message(row["msg_id"], queue, row["message"], row["read_ct"]),
                row["workflow_step_uuid"],
                row["attempts"],
                row,
                token=row["claim_token"],
                received_at=received_at,
            )
            for row in won
        ]

    async def _claim_others(self, conn: Connection, queue: str, messages: list[Message]) -> list[Claim]:
        """Redeliveries and lost races. A failure here (a malformed message, the connection) must not lose the
        claims already committed with them: it is logged, and these messages come back after their visibility
        timeout."""
        try:
            return await self._claim(conn, queue, messages)
        except Exception:
            log.exception(
                "looking at %d redelivered message(s) of %s failed; they come back later", len(messages), queue
            )
            return []

    def _note_drained(self, queue: str, drained: bool) -> None:
        """Whether the last read took everything visible: then the consumer waits for a wake-up (a NOTIFY sent
        after the read's snapshot sets it at once) instead of reading an empty queue again."""
        if drained:
            self._drained.add(queue)
        else:
            self._drained.discard(queue)

    def _claim_metadata(self, message: Message, token: str) -> dict[str, Any]:
        return self._claim_metadata_for(message.body.get("correlation_id"), token)

    def _claim_metadata_for(self, correlation_id: object, token: str) -> dict[str, Any]:
        return {"worker_uuid": self.worker_uuid, "correlation_id": correlation_id, "claim_token": token}

    @staticmethod
    def _claims(rows: list[dict[str, Any]], by_step: dict[UUID, Message], changes: list[StepChange]) -> list[Claim]:
        tokens = {c.step_uuid: c.metadata["claim_token"] for c in changes}
        return [
            Claim(by_step[step], step, r["attempts"], r, token=tokens[step])
            for r in rows
            for step in [r["workflow_step_uuid"]]
        ]

    async def _claim_fresh(self, conn: Connection, messages: list[Message]) -> list[Claim]:
        """First deliveries: claim ``enqueued → in_progress`` and load the contexts in one statement."""
        by_step = {UUID(m.body["step_uuid"]): m for m in messages}
        changes = [
            StepChange(step, StepState.ENQUEUED, [StepEvent.START], self._claim_metadata(m, new_claim_token()))
            for step, m in by_step.items()
        ]
        rows = await step_claim_many(conn, changes)
        self._count_claims(rows, "fresh")
        return self._claims(rows, by_step, changes)

    @staticmethod
    def _count_claims(rows: list[dict[str, Any]], method: str) -> None:
        for row in rows:
            STEPS_CLAIMED.labels(row["namespace_name"], method).inc()

    def _claim_change(self, message: Message, view: dict[str, Any] | None) -> StepChange | None:
        """How to take this message's step, or None when the message is stale (the step moved on)."""
        if view is None:
            return None
        step_uuid = view["workflow_step_uuid"]
        metadata = self._claim_metadata(message, new_claim_token())
        state = StepState(view["state"])
        if state is StepState.ENQUEUED:
            return StepChange(step_uuid, state, [StepEvent.START], metadata, expected_attempts=view["attempts"])
        if state is StepState.IN_PROGRESS and message.read_count > 1:
            # visible again while in progress: the holder stopped renewing its lease, so it is gone
            return StepChange(
                step_uuid,
                state,
                [StepEvent.LEASE_EXPIRED, StepEvent.START],
                {**metadata, "lease_expired": True},
                expected_attempts=view["attempts"],
            )
        return None

    async def _claim(self, conn: Connection, queue: str, messages: list[Message]) -> list[Claim]:
        by_step = {UUID(m.body["step_uuid"]): m for m in messages}
        views = await step_claim_view_many(conn, list(by_step))
        changes: list[StepChange] = []
        stale: list[int] = []
        lost: list[tuple[str, Claim, Execution]] = []
        for step_uuid, message in by_step.items():
            view = views.get(step_uuid)
            if view is not None and self._lost_for_good(message, view):
                lost.append((queue, *self._lost_attempt(message, view)))
                continue
            change = self._claim_change(message, view)
            if change is None:
                stale.append(message.msg_id)
            else:
                changes.append(change)
        rows = await step_claim_many(conn, changes)
        self._count_claims(rows, "redelivered")
        claimed = {r["workflow_step_uuid"] for r in rows}
        stale += [by_step[c.step_uuid].msg_id for c in changes if c.step_uuid not in claimed]
        await self.transport.ack_many(conn, queue, stale)
        if lost:
            await self._store_many(lost)
        return self._claims(rows, by_step, changes)

    @staticmethod
    def _lost_for_good(message: Message, view: dict[str, Any]) -> bool:
        """A step whose worker vanished mid-attempt and that may not run again (attempts used up)."""
        return (
            view["state"] == StepState.IN_PROGRESS
            and message.read_count > 1
            and (not view["retryable"] or view["attempts"] >= view["max_attempts"])
        )

    def _lost_attempt(self, message: Message, view: dict[str, Any]) -> tuple[Claim, Execution]:
        """The result of an attempt whose worker vanished: a failure the orchestrator finishes (no attempt left)."""
        # fenced by the lost worker's claim token: if anything moved the step meanwhile, this report loses
        claim = Claim(message, view["workflow_step_uuid"], view["attempts"], dict(view), token=view["claim_token"])
        failure = StepResult.failed(
            "the worker running this step stopped before it finished (its lease ran out), and the step has no "
            "attempt left",
            error_type="worker_lost",
            retryable=True,
        )
        log.warning(
            "step %s: its worker was lost on the last attempt; reporting the attempt as failed",
            claim.step_uuid,
            extra={"step_uuid": claim.step_uuid, "task_uuid": view["task_uuid"]},
        )
        return claim, Execution(failure, 0)

    async def _run(self, queue: str, claim: Claim) -> None:
        namespace = claim.row.get("namespace_name", "")
        STEPS_ACTIVE.inc()
        try:
            with task_span(
                "step.execute",
                claim.row["correlation_id"],
                task_uuid=claim.row["task_uuid"],
                step_uuid=claim.step_uuid,
                step_name=claim.row["name"],
                attempt=claim.attempts,
                worker_uuid=self.worker_uuid,
                namespace=namespace,
            ):
                execution = await self._execute(claim)
            self._observe(namespace, execution)
            await self._retrying(claim, "storing its result", functools.partial(self._submit, queue, claim, execution))
            self.steps_done += 1
        except Exception:
            log.exception(
                "step %s: gave up storing its result before its lease ran out; the step will run again",
                claim.step_uuid,
                extra={"step_uuid": claim.step_uuid, "task_uuid": claim.row.get("task_uuid")},
            )
        finally:
            STEPS_ACTIVE.dec()
            self.leases.release(claim.step_uuid)
            self.running.pop(claim.step_uuid, None)
            self._slot_freed.set()

    async def _retrying(self, claim: Claim, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation()`` until it succeeds, with backoff, while this worker holds the step's lease (renewed
        meanwhile: the claim stays held), for at most one lease period; re-raises the last error after that.

        The work is done: losing it to one dropped connection would run the handler again a lease later, and on the
        step's last attempt turn a success into ``worker_lost``.
        """
        delay, maximum = self.config.store_retry_seconds
        give_up_at = time.monotonic() + self.config.lease_seconds
        margin = min(1.0, self.config.lease_seconds / 10)
        while True:
            try:
                return await operation()
            except Exception as exc:
                lease_ends = claim.lease.deadline if claim.lease is not None else give_up_at
                if time.monotonic() + delay >= min(lease_ends, give_up_at) - margin:
                    raise
                log.warning(
                    "step %s: %s failed (%s: %s); retrying in %.1f s",
                    claim.step_uuid,
                    what,
                    type(exc).__name__,
                    exc,
                    delay,
                    extra={"step_uuid": claim.step_uuid, "task_uuid": claim.row.get("task_uuid")},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, maximum)

    async def _submit(self, queue: str, claim: Claim, execution: Execution) -> None:
        """Hand the result to the completer (which stores results in batches) and wait until it is stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._completions.put((queue, claim, execution, done))
        await done

    @staticmethod
    def _observe(namespace: str, execution: Execution) -> None:
        STEPS_EXECUTED.labels(namespace).inc()
        STEP_EXECUTION.labels(namespace).observe(execution.execution_time_ms)
        if execution.result.success:
            STEPS_SUCCEEDED.labels(namespace).inc()
        else:
            error_type = execution.result.error.error_type if execution.result.error else "unknown"
            STEPS_FAILED.labels(namespace, error_type).inc()

    def _task_cancelled(self, task_uuid: str) -> None:
        """A task was cancelled: its running handlers see ``context.cancelled``; async ones are cancelled too."""
        for claim in list(self.running.values()):
            if str(claim.row.get("task_uuid")) != task_uuid or claim.context is None:
                continue
            claim.context.cancelled = True
            if claim.handler_is_async and claim.handler is not None:
                claim.handler.cancel()
            log.info(
                "step %s: its task was cancelled",
                claim.step_uuid,
                extra={"step_uuid": claim.step_uuid, "task_uuid": task_uuid},
            )

    async def _complete(self) -> None:
        """Store results in batches: whatever finished while the previous batch was being written goes next."""
        while True:
            batch = [await self._completions.get()]
            while not self._completions.empty() and len(batch) < 200:
                batch.append(self._completions.get_nowait())
            await self._store_batch(batch)

    async def _store_batch(self, batch: list[tuple[str, Claim, Execution, asyncio.Future[None]]]) -> None:
        """Store a batch and settle each waiter. When the batch fails for a reason other than the connection, its
        results are stored one by one, so that one bad result does not fail the others with it."""
        try:
            await self._store_many([(queue, claim, execution) for queue, claim, execution, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, psycopg.OperationalError):
                for item in batch:
                    await self._store_batch([item])
                return
            for *_, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for *_, done in batch:
            if not done.done():
                done.set_result(None)

    async def _template(self, named_task_uuid: UUID) -> TaskTemplate:
        """The task's template; a connection is taken (and checked) only the first time (templates never change)."""
        template = self._known_templates.get(named_task_uuid)
        if template is None:
            async with self.pool.connection() as conn:
                template = await self.templates.get(conn, named_task_uuid)
            self._known_templates[named_task_uuid] = template
        return template

    async def _execute(self, claim: Claim) -> Execution:
        row = claim.row
        template = await self._retrying(
            claim, "loading its template", functools.partial(self._template, row["named_task_uuid"])
        )
        definition = template.step(row["template_step_name"])
        context = StepContext(
            task_uuid=row["task_uuid"],
            step_uuid=row["workflow_step_uuid"],
            correlation_id=row["correlation_id"],
            step_name=row["name"],
            template_step_name=row["template_step_name"],
            namespace=row["namespace_name"],
            task_name=row["task_name"],
            task_version=row["task_version"],
            input_data=row["context"] or {},
            step_inputs=row["inputs"] or {},
            step_config=dict(definition.handler.initialization),
            dependency_results=row["dependency_results"] or {},
            attempt=row["attempts"],
            max_attempts=row["max_attempts"],
            checkpoint=row["checkpoint"],
            checkpoint_saver=functools.partial(self._save_checkpoint, claim),
            loop=asyncio.get_running_loop(),
        )
        if context.is_no_op:  # the placeholder worker of an empty batch: nothing to run
            batch_id = context.batch_inputs.batch_id
            return Execution(StepResult.ok({**worker_result(0, batch_id=batch_id), "no_op": True}), 0)
        timeout = definition.timeout_seconds or self.config.default_timeout_seconds
        callable_name, method = definition.handler.callable, definition.handler.method
        claim.context = context
        resolver = definition.handler.resolver
        claim.handler_is_async = is_async_handler(self.registry, callable_name, method, self._allowed, resolver)
        for _ in range(MAX_CHECKPOINT_YIELDS):
            claim.handler = asyncio.ensure_future(
                execute(
                    self.registry,
                    callable_name,
                    method,
                    context,
                    timeout_seconds=timeout,
                    pool=self._threads,
                    allowed_modules=self._allowed,
                    resolver=resolver,
                )
            )
            execution = await claim.handler
            checkpoint = checkpoint_yield_of(execution.result)
            if checkpoint is None or context.cancelled:
                return execution
            # tasker-core style: the handler returned a checkpoint yield; store it, then call it again from there
            try:
                await context.save_checkpoint(checkpoint)
            except CheckpointRejectedError as exc:
                return Execution(StepResult.failed(str(exc), error_type="checkpoint_rejected"), 0)
        failure = f"the handler yielded a checkpoint {MAX_CHECKPOINT_YIELDS} times in one attempt without finishing"
        return Execution(StepResult.failed(failure, error_type="checkpoint_yield_limit", retryable=False), 0)

    async def _save_checkpoint(self, claim: Claim, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        """A running handler's checkpoint, stored only while this claim still holds the step."""
        if claim.token is None:
            return None
        async with self.pool.connection() as conn:
            return await step_checkpoint_save_claimed(conn, claim.step_uuid, claim.attempts, claim.token, checkpoint)

    def _result_change(self, claim: Claim, execution: Execution) -> StepChange:
        result: StepResult = execution.result
        correlation_id = claim.row["correlation_id"]
        stored = result.stored(
            step_uuid=str(claim.step_uuid),
            worker_id=str(self.worker_uuid),
            execution_time_ms=execution.execution_time_ms,
            completed_at=datetime.now(UTC).isoformat(),
        )
        event = StepEvent.ENQUEUE_FOR_ORCHESTRATION if result.success else StepEvent.ENQUEUE_AS_ERROR_FOR_ORCHESTRATION
        metadata: dict[str, Any] = {"worker_uuid": self.worker_uuid, "correlation_id": correlation_id}
        if claim.token is not None:  # the fence (checked, not written) and the trail (written)
            metadata |= {"expected_claim_token": claim.token, "claim_token": claim.token}
        return StepChange(
            claim.step_uuid,
            StepState.IN_PROGRESS,
            [event],
            metadata,
            expected_attempts=claim.attempts,
            results=stored,
            audit=StepAudit(result.success, self.worker_uuid, correlation_id, execution.execution_time_ms),
        )

    async def _store_many(self, finished: list[tuple[str, Claim, Execution]]) -> None:
        """Store results with their audit rows, and delete the step messages: one commit.

        Fast path (``WorkerConfig.fast_path``): a successful result whose task no one else has locked is applied
        here, in the same transaction, by the orchestrator's own code (``engine.results.apply_stored``): the step
        completes and the steps it made ready are enqueued, without a hop through an orchestrator. Every other
        result is announced on the results queue for an orchestrator, which keeps retries, contended tasks, sweeps
        and timeouts. A result whose step moved on (cancelled, taken over after our lease ran out, or claimed again
        after a database crash rolled our claim back) is not applied, and its message is left alone: it now belongs
        to whoever holds the step.
        """
        changes = [self._result_change(claim, execution) for _, claim, execution in finished]
        held = [HeldMessage(claim.step_uuid, queue, claim.message.msg_id) for queue, claim, _ in finished]
        events = self._events(finished, changes)
        following = NextClaims()
        async with self.pool.connection() as conn:
            store = functools.partial(self._store_and_apply, conn, finished, changes, held, following)
            try:
                stored = await domain_event_store_with(conn, events, store)  # durable events: in its transaction
                await self._start_following(following)
            finally:
                self._release(following)
            self.events.publish(stored_events(events, stored))  # fast events: committed results only
            late = [
                (queue, claim, change)
                for (queue, claim, _), change in zip(finished, changes, strict=True)
                if claim.step_uuid not in stored
            ]
            if late:
                await self._record_late(conn, late)

    async def _store_and_apply(
        self,
        conn: Connection,
        finished: list[tuple[str, Claim, Execution]],
        changes: list[StepChange],
        held: list[HeldMessage],
        following: NextClaims,
    ) -> set[UUID]:
        """The stored steps. When applying here fails for a reason other than the connection, the transaction
        rolls back whole and the results are stored again for an orchestrator, which handles results that keep
        failing (retried with backoff, then dead-lettered) instead of this worker retrying them forever."""
        self._release(following)  # a try before this one rolled back: its claims are gone
        lock_tasks = [
            claim.row.get("task_uuid") if execution.result.success else None for _, claim, execution in finished
        ]
        if not self.config.fast_path or not any(lock_tasks):
            return (
                await (await self.transport.store_results(conn, changes, held, results_queue=STEP_RESULTS_QUEUE))()
            ).stored
        completions = [
            self._completion(claim) if task else None for (_, claim, _), task in zip(finished, lock_tasks, strict=True)
        ]
        started = time.time_ns()
        try:
            stored, batch = await self._store_and_apply_here(conn, changes, held, lock_tasks, completions, following)
        except psycopg.OperationalError:
            raise
        except Exception:
            log.exception("applying %d result(s) here failed; handing them to an orchestrator", len(finished))
            self._release(following)
            return (
                await (await self.transport.store_results(conn, changes, held, results_queue=STEP_RESULTS_QUEUE))()
            ).stored
        if batch is not None:
            self._observe_applied(batch, finished, started, time.time_ns())
        return stored

    async def _store_and_apply_here(
        self,
        conn: Connection,
        changes: list[StepChange],
        held: list[HeldMessage],
        lock_tasks: list[UUID | None],
        completions: list[StepChange | None],
        following: NextClaims,
    ) -> tuple[set[UUID], AppliedBatch | None]:
        """The fast path in one pipelined transaction. The store takes the free task locks, completes the standard
        steps' successes among the results whose task it locked and, where what comes next is plain, moves those
        tasks on (the continuation: the steps made ready are enqueued, and claimed for us while we have slots);
        the claimed steps' held messages and handler context go out with it, and so do the outcome read and the
        readiness when some result will need the engine's planning (otherwise they are read only if it does). Then
        ``apply_stored`` for the results whose task we locked and the store did not move on (finalisation,
        decisions, batches), as an orchestrator would, claiming what they make ready in our queues while we have
        free slots (``_keep_here``, ``_claim_kept``). The reads are statements after the lock, so they see every
        commit made before it; a transaction the store moved on whole needs only its COMMIT after the answer.

        When every result we may apply is a standard step's success, the store goes first in one flight
        (``_store_in_one_flight``); only if it left something to plan does the transaction below run."""
        continuation = self._continuation(following, completions)
        if continuation is not None and _one_flight_possible(conn, lock_tasks, completions):
            try:
                return await self._store_in_one_flight(
                    conn, changes, held, lock_tasks, completions, continuation, following
                )
            except psycopg.Error as exc:
                if not results_need_planning(exc):
                    raise
            log.debug("a stored result needs planning here: storing %d result(s) again, the long way", len(changes))
            RESULT_STORES_FLOWN_AGAIN.inc()
            self._release(following)  # the flight rolled back whole: its claims are gone
            continuation = self._continuation(following, completions)
        async with pipelined_transaction(conn):
            sent_store = await self._send_store_and_claims(
                conn, changes, held, lock_tasks, completions, continuation, following, moved_on_only=False
            )
            sent_outcomes, sent_readiness = await _send_planning_reads(
                conn, changes, lock_tasks, completions, continuation
            )
            result = await sent_store()
            self._give_back_unclaimed(following, continuation, result)
            if not result.here:
                return result.stored, None
            moved_on = _moved_on(result)
            left = result.here - result.planned
            if not left:
                return result.stored, moved_on

            async def outcomes_here() -> list[dict[str, Any]]:
                assert sent_outcomes is not None
                return [row for row in await sent_outcomes() if row["workflow_step_uuid"] in left]

            batch = await apply_stored(
                conn,
                self.transport,
                self.templates,
                list(left),
                processor_uuid=self.worker_uuid,
                outcomes=outcomes_here if sent_outcomes is not None else None,
                keep=self._keep_here(following),
                completed=frozenset(result.completed & left),
                readiness=sent_readiness,
            )
            await self._claim_kept(conn, batch.kept, following)
        return result.stored, batch.merged(moved_on)

    async def _store_in_one_flight(
        self,
        conn: Connection,
        changes: list[StepChange],
        held: list[HeldMessage],
        lock_tasks: list[UUID | None],
        completions: list[StepChange | None],
        continuation: Continuation,
        following: NextClaims,
    ) -> tuple[set[UUID], AppliedBatch | None]:
        """BEGIN, the store, the statement that claims what it makes ready for us and COMMIT, sent together, so a
        step costs one round trip instead of two (the answer, then COMMIT). The store may leave nothing for us to
        plan in this transaction, and its guard makes sure: it fails the store (``results_need_planning``) when a
        result applied here was not moved on, and the COMMIT behind it is skipped: the transaction rolls back whole.
        An exception of ours before the COMMIT is queued rolls it back as well (``store.db.pipelined_transaction``);
        the answer is read only once the transaction has ended."""
        async with pipelined_transaction(conn):
            sent_store = await self._send_store_and_claims(
                conn, changes, held, lock_tasks, completions, continuation, following, moved_on_only=True
            )
        result = await sent_store()
        self._give_back_unclaimed(following, continuation, result)
        return result.stored, _moved_on(result) if result.here else None

    async def _send_store_and_claims(
        self,
        conn: Connection,
        changes: list[StepChange],
        held: list[HeldMessage],
        lock_tasks: list[UUID | None],
        completions: list[StepChange | None],
        continuation: Continuation | None,
        following: NextClaims,
        *,
        moved_on_only: bool,
    ) -> Pending[StoredResults]:
        """Send the store and, behind it, the statements that claim for us what it makes ready; the store's answer
        is read later."""
        sent_store = await self.transport.store_results(
            conn,
            changes,
            held,
            results_queue=STEP_RESULTS_QUEUE,
            lock_tasks=lock_tasks,
            completions=completions,
            continuation=continuation,
            moved_on_only=moved_on_only,
        )
        if continuation is not None and continuation.claim_tokens:
            await self._claim_continued(conn, continuation, held, lock_tasks, completions, following)
        return sent_store

    def _continuation(self, following: NextClaims, completions: list[StepChange | None]) -> Continuation | None:
        """What the store needs to move plain tasks on (store.steps.Continuation): a fresh claim token for each
        slot we can give the steps it makes ready, at most one per completion (a chain's step makes one ready; the
        others go to the queue for any consumer), each slot held from now (``following.reserved``) until the store
        answers, when the unused ones are given back (``_give_back_unclaimed``)."""
        count = sum(1 for completion in completions if completion is not None)
        if not count or self._stopping or not isinstance(self.transport, ClaimingTransport):
            return None
        tokens = [new_claim_token() for _ in range(max(0, min(count, self._free_slots())))]
        self._reserved += len(tokens)
        following.reserved += len(tokens)
        return Continuation(
            queues={ns: (queue, channel(queue)) for ns, queue in zip(self.config.namespaces, self.queues, strict=True)},
            claim_tokens=tokens,
            claim_metadata={"worker_uuid": self.worker_uuid},
            enqueue_metadata={"processor_uuid": self.worker_uuid},
            lease_seconds=self.config.lease_seconds,
        )

    async def _claim_continued(
        self,
        conn: Connection,
        continuation: Continuation,
        held: list[HeldMessage],
        lock_tasks: list[UUID | None],
        completions: list[StepChange | None],
        following: NextClaims,
    ) -> None:
        """Send, after the store, the statement per queue that writes the held messages of the steps the store
        claims for us and reads their handler context; its rows start once the transaction has committed
        (``_start_following``), like the claims of ``_claim_kept``."""
        by_queue: dict[str, set[UUID]] = {}
        for message, task, completion in zip(held, lock_tasks, completions, strict=True):
            if task is not None and completion is not None:
                by_queue.setdefault(message.queue, set()).add(task)
        for queue, tasks in by_queue.items():
            received_at = time.monotonic()  # the lease (the held message's visibility timeout) runs from here
            rows = await step_claim_by_token_send(
                conn, queue, list(tasks), continuation.claim_tokens, visibility_seconds=continuation.lease_seconds
            )
            following.taken.append((queue, received_at, rows))

    def _give_back_unclaimed(
        self, following: NextClaims, continuation: Continuation | None, result: StoredResults
    ) -> None:
        """Give back the slots held for claim tokens the store did not use."""
        if continuation is None:
            return
        unused = len(continuation.claim_tokens) - sum(1 for step in result.next if step.claim_token is not None)
        if unused:
            self._reserved -= unused
            following.reserved -= unused
            self._slot_freed.set()

    def _completion(self, claim: Claim) -> StepChange | None:
        """The completion the store may apply to this success (``engine.results.completes_when_stored``): a
        standard step's, with the metadata an orchestrator's completion records."""
        row = claim.row
        template = self._known_templates.get(row["named_task_uuid"])
        if template is None or not completes_when_stored(template, row["template_step_name"]):
            return None
        return completion_of(
            claim.step_uuid, {"processor_uuid": self.worker_uuid, "correlation_id": row["correlation_id"]}
        )

    def _keep_here(self, following: NextClaims) -> KeepHere | None:
        """Which of the steps our results make ready we claim ourselves: those of our queues while we have free
        slots, each slot held from the moment it is promised (``following.reserved``) so that no consumer fills it
        meanwhile; the consumers keep every other slot."""
        if self._stopping or not isinstance(self.transport, ClaimingTransport):
            return None
        return KeepHere(frozenset(self.queues), functools.partial(self._new_claim, following))

    def _new_claim(self, following: NextClaims) -> dict[str, Any] | None:
        if self._free_slots() <= 0:
            return None
        self._reserved += 1
        following.reserved += 1
        return {"worker_uuid": self.worker_uuid, "claim_token": new_claim_token()}

    async def _claim_kept(self, conn: Connection, kept: list[KeptStep], following: NextClaims) -> None:
        """Write, in the caller's transaction, the held messages of the steps that ``apply_stored`` enqueued and
        claimed for us (``KeepHere``): the same fence (claim token, attempt) as a consumer's claim and a message
        held under a lease as if we had read it, without the commit, wake-up and read that would otherwise come
        between a step and the next. The claims roll back with the transaction; they start once it has committed
        (``_start_following``)."""
        if not kept or not isinstance(self.transport, ClaimingTransport):
            return
        by_queue: dict[str, list[tuple[UUID, UUID, str]]] = {}
        for step in kept:
            by_queue.setdefault(step.queue, []).append(
                (step.step_uuid, step.correlation_id, str(step.claim["claim_token"]))
            )
        for queue, steps in by_queue.items():
            received_at = time.monotonic()  # the lease (the held message's visibility timeout) runs from here
            rows = await self.transport.claim_kept(conn, queue, steps, visibility_seconds=self.config.lease_seconds)
            following.taken.append((queue, received_at, rows))

    async def _start_following(self, following: NextClaims) -> None:
        """Start the steps claimed in a store transaction that committed. A step whose claim did not win got an
        ordinary message instead: a consumer takes it like any other."""
        for queue, received_at, rows in following.taken:
            self._start(queue, self._claims_won(queue, received_at, await rows(), "in_store"))

    def _observe_applied(
        self, batch: AppliedBatch, finished: list[tuple[str, Claim, Execution]], started: int, ended: int
    ) -> None:
        """Metrics and spans of results applied here, as an orchestrator records them; steps made ready in our own
        queues and sent there (not claimed here) are claimed at once, without waiting for the NOTIFY."""
        STEP_RESULTS_APPLIED_BY_WORKER.inc(len(batch.applied))
        rows = {claim.step_uuid: claim.row for _, claim, _ in finished}
        for outcome in batch.applied:
            row = rows.get(outcome.step_uuid) or {}
            if row.get("correlation_id") is not None:
                record_task_span(
                    "step.result_processed",
                    row["correlation_id"],
                    started,
                    ended,
                    task_uuid=row.get("task_uuid"),
                    step_uuid=outcome.step_uuid,
                    processor_uuid=self.worker_uuid,
                    batch=len(batch.applied),
                )
        for outcome in batch.applied:
            STEP_RESULTS_PROCESSED.labels(str(outcome.step_state)).inc()
            if outcome.task_state is TaskState.COMPLETE:
                TASKS_COMPLETED.inc()
            elif outcome.task_state is TaskState.BLOCKED_BY_FAILURES:
                TASKS_FAILED.inc()
        if self._wakeups is not None:
            for queue in batch.queues & set(self.queues):
                self._wakeups.notify_local(queue)

    def _events(self, finished: list[tuple[str, Claim, Execution]], changes: list[StepChange]) -> list[DomainEvent]:
        """The domain events these results publish once stored (tasker.worker.events); a lost attempt reported
        for another worker has no template loaded here and publishes none."""
        results = []
        for (_, claim, _), change in zip(finished, changes, strict=True):
            named_task = claim.row.get("named_task_uuid")
            template = self._known_templates.get(named_task) if isinstance(named_task, UUID) else None
            results.append(StoredResult(template, claim.row, claim.attempts, change.results))
        return events_of(results, worker_id=str(self.worker_uuid))

    async def _record_late(self, conn: Connection, late: list[tuple[str, Claim, StepChange]]) -> None:
        """Results whose step moved on are recorded in the audit trail, not applied; the messages of steps that are
        final (cancelled, finished by an operator) are acknowledged, those taken over by another worker are not.
        A result that an earlier try of this store did commit is simply done."""
        results = [LateResult(claim.step_uuid, change.audit, claim.token) for _, claim, change in late if change.audit]
        recorded = await step_result_late_record_many(conn, results)
        for queue, claim, _ in late:
            if claim.step_uuid in recorded.already_stored:
                continue
            log.warning(
                "step %s: late result recorded but not applied (the step moved on)",
                claim.step_uuid,
                extra={"step_uuid": claim.step_uuid, "task_uuid": claim.row.get("task_uuid")},
            )
            if claim.step_uuid in recorded.final:
                await self.transport.ack_many(conn, queue, [claim.message.msg_id])


async def _send_planning_reads(
    conn: Connection,
    changes: list[StepChange],
    lock_tasks: list[UUID | None],
    completions: list[StepChange | None],
    continuation: Continuation | None,
) -> tuple[Pending[list[dict[str, Any]]] | None, Pending[dict[UUID, list[dict[str, Any]]]] | None]:
    """What the engine's planning reads (the outcomes, the readiness of the tasks whose steps the store may
    complete), sent with the store unless the store is expected to move every task on itself (each result a
    standard step's success, with a continuation): then ``apply_stored`` reads them only if it is needed after all."""
    ahead = continuation is None or any(
        task and completion is None for task, completion in zip(lock_tasks, completions, strict=True)
    )
    if not ahead:
        return None, None
    succeeded = [change.step_uuid for change, task in zip(changes, lock_tasks, strict=True) if task]
    completing = list({task for task, done in zip(lock_tasks, completions, strict=True) if done and task})
    outcomes = await step_outcome_many_send(conn, succeeded)
    readiness = await step_readiness_many_send(conn, completing) if completing else None
    return outcomes, readiness


def _one_flight_possible(conn: Connection, lock_tasks: list[UUID | None], completions: list[StepChange | None]) -> bool:
    """Whether a store can commit in its own flight: no transaction is open around it (durable domain events
    open one, to insert the events of the stored steps after the answer), and every result we may apply here
    is one the store completes itself (a standard step's success). A result we would have to decide on (a
    decision or batch step) needs the engine's planning in the store's transaction."""
    if conn.info.transaction_status is not TransactionStatus.IDLE:
        return False
    return all(task is None or completion is not None for task, completion in zip(lock_tasks, completions, strict=True))


def _moved_on(result: StoredResults) -> AppliedBatch:
    """What a store that moved tasks on itself applied, as ``apply_stored`` reports it: the planned steps
    completed (and their tasks, when finished), and the messages it sent per queue (the steps it claimed for us
    are started from ``next``)."""
    applied = [
        Applied(step, StepState.COMPLETE, TaskState.COMPLETE if step in result.finished else None)
        for step in result.planned
    ]
    sent = Counter(step.queue for step in result.next if step.claim_token is None)
    return AppliedBatch(applied, dict(sent), [])
