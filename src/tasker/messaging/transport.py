"""The transport seam: what the engine and workers need from a message queue, and nothing else.

Messages carry identifiers only (``{task_uuid, step_uuid, correlation_id}``); PostgreSQL holds the state. Sends
take the caller's database connection because a step's message must be committed with the step's ``enqueued``
transition: PGMQ sends in that same transaction; a broker transport would write an outbox row there instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from tasker.store.db import Connection, Pending
from tasker.store.steps import Continuation, HeldMessage, StoredResults
from tasker.store.tasks import Delivery
from tasker.store.transitions import StepChange, TaskChange


@dataclass(frozen=True)
class Message:
    msg_id: int
    queue: str
    body: dict[str, Any]
    read_count: int


class Transport(Protocol):
    async def ensure_queue(self, conn: Connection, queue: str) -> None: ...

    async def send_many(self, conn: Connection, queue: str, bodies: Sequence[dict[str, Any]]) -> None:
        """Send in the caller's transaction (pipeline mode allowed); visible to consumers when it commits."""
        ...

    async def receive(
        self, conn: Connection, queue: str, *, max_messages: int, visibility_seconds: int
    ) -> list[Message]:
        """Take up to ``max_messages``, hidden from other consumers for ``visibility_seconds`` (the lease)."""
        ...

    async def ack_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        """Done with these messages (pipeline mode allowed)."""
        ...

    async def nack_many(
        self, conn: Connection, queue: str, msg_ids: Sequence[int], *, delay_seconds: float = 0.0
    ) -> None:
        """Give messages back: visible again after ``delay_seconds``."""
        ...

    async def record_failure(
        self, conn: Connection, queue: str, msg_id: int, *, error: str, delay_seconds: float
    ) -> int:
        """Processing this message failed (its transaction rolled back): count it, keep the error, hide the message
        for ``delay_seconds``; returns how many times it has failed."""
        ...

    async def dead_letter_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        """Take messages that keep failing out of the queue, kept where an operator can look at them."""
        ...

    async def extend_many(self, conn: Connection, queue: str, msg_ids: Sequence[int], *, seconds: int) -> None:
        """Renew the lease of messages still being worked on."""
        ...

    async def depth(self, conn: Connection, queue: str) -> int: ...

    def on_message(self, queue: str, wake: Callable[[], None]) -> None:
        """Call ``wake`` when a message for ``queue`` arrives at this process (push transports; PGMQ's arrivals
        wake the receive loop through LISTEN/NOTIFY instead)."""
        ...

    async def close(self) -> None:
        """Release what the transport holds (broker connection, sender); nothing for PGMQ."""
        ...

    async def advance(
        self,
        conn: Connection,
        *,
        enqueue: Sequence[StepChange],
        deliveries: Sequence[Delivery],
        moves: Sequence[TaskChange],
        ack_queue: str,
        ack_ids: Sequence[int],
    ) -> None:
        """Carry out orchestration plans in the caller's transaction (tasks locked): enqueue the steps and send
        their messages, move the tasks, acknowledge the applied result messages."""
        ...

    async def store_results(
        self,
        conn: Connection,
        results: Sequence[StepChange],
        held: Sequence[HeldMessage],
        *,
        results_queue: str,
        lock_tasks: Sequence[UUID | None] = (),
        completions: Sequence[StepChange | None] = (),
        continuation: Continuation | None = None,
        moved_on_only: bool = False,
    ) -> Pending[StoredResults]:
        """A worker's results (sent now, read by awaiting the answer): store them, announce them on
        ``results_queue``, acknowledge their step messages;
        a lost compare-and-swap is neither announced nor acked. ``lock_tasks`` (one per result, or None) names tasks
        to lock if free (the fast path): their results are stored but not announced, the caller applies them in
        its open transaction. ``completions`` (one per result, or None): the completion a transport may apply with
        the store to a result stored for the caller (``StoredResults.completed``); the caller applies the others.
        ``continuation``: what a transport may use to move those tasks on as well (``StoredResults.planned``).
        ``moved_on_only``: the caller commits before reading the answer, so a result stored for the caller that the
        transport did not move on must fail the store (``store.steps.results_need_planning``); only a transport
        that moves tasks on (a ``ClaimingTransport``) accepts it."""
        ...


@runtime_checkable
class ClaimingTransport(Protocol):
    """A transport whose queues live in the database can read and claim in one statement (one round trip fewer per
    step); workers use it when their transport offers it."""

    async def receive_and_claim(
        self,
        conn: Connection,
        queue: str,
        *,
        max_messages: int,
        visibility_seconds: int,
        metadata: dict[str, str],
    ) -> list[dict[str, Any]]:
        """See ``store.steps.step_claim_from_queue``."""
        ...

    async def claim_kept(
        self, conn: Connection, queue: str, kept: Sequence[tuple[UUID, UUID, str]], *, visibility_seconds: int
    ) -> Pending[list[dict[str, Any]]]:
        """Write the held messages of steps enqueued and claimed without one in the caller's transaction
        (``engine.finalizer.KeepHere``): step, correlation id, claim token each; see
        ``store.steps.step_claim_kept_send``."""
        ...
