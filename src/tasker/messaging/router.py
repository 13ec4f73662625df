"""Every queue name and notification channel is derived here and nowhere else (names as tasker-core's)."""

from __future__ import annotations

import re

from tasker.errors import ConfigurationError

STEP_RESULTS_QUEUE = "orchestration_step_results"
TASK_REQUESTS_QUEUE = "orchestration_task_requests"
ORCHESTRATION_QUEUES = (STEP_RESULTS_QUEUE, TASK_REQUESTS_QUEUE)

_QUEUE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_QUEUE_NAME = 47


def worker_queue(namespace: str) -> str:
    """The queue that carries a namespace's steps to its workers: ``worker_<namespace>_queue``."""
    name = f"worker_{namespace}_queue"
    if not _QUEUE_NAME.match(name) or len(name) > MAX_QUEUE_NAME:
        raise ConfigurationError(
            f"namespace {namespace!r} cannot name a queue: use letters, digits and underscores, "
            f"start with a letter or underscore, at most {MAX_QUEUE_NAME - len('worker__queue')} characters"
        )
    return name


def channel(queue: str) -> str:
    """The LISTEN/NOTIFY channel that signals new messages on ``queue``."""
    return f"tasker_{queue}"


# Notified (payload: the task's uuid) when a task completes, fails, is cancelled or blocks; raised by the
# task transition statement in store/sql/transitions.sql.
TASK_SETTLED_CHANNEL = "tasker_task_settled"

# Notified (payload: the task's uuid) when a task is cancelled, so workers can tell its running handlers.
TASK_CANCELLED_CHANNEL = "tasker_task_cancelled"

# Notified (payload: the schedule's name) when a schedule is added, removed, enabled or disabled, so every
# orchestrator's scheduler recomputes when it must wake up.
SCHEDULES_CHANNEL = "tasker_schedules_changed"

# The outbox of the RabbitMQ transport (tasker_ext.outbox) wakes its senders on this queue's channel
# (``channel(OUTBOX_QUEUE)``): a pseudo-queue of PostgreSQL only, never declared on a broker.
OUTBOX_QUEUE = "outbox"


def broker_queue(prefix: str, queue: str) -> str:
    """A queue's name on the broker: the configured prefix (empty in production; one per test run) and the name."""
    return f"{prefix}{queue}"


def dead_letter_names(broker_name: str) -> tuple[str, str]:
    """The dead-letter exchange and queue of a broker queue, named as tasker-core's: ``<q>_dlx``, ``<q>_dlq``."""
    return f"{broker_name}_dlx", f"{broker_name}_dlq"
