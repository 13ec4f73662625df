"""The one place a transport is chosen: ``TASKER_TRANSPORT`` (``pgmq``, the default, or ``rabbitmq``)."""

from __future__ import annotations

from tasker.config import Settings
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.transport import Transport


def make_transport(settings: Settings, database_url: str) -> Transport:
    """The configured transport for a process connected to ``database_url`` (the outbox lives there)."""
    if settings.transport == "rabbitmq":
        from tasker.messaging.rabbitmq import RabbitMqTransport  # aio-pika is imported only when chosen

        return RabbitMqTransport(
            database_url,
            settings.rabbitmq_url.get_secret_value(),
            prefix=settings.queue_prefix,
            prefetch=settings.rabbitmq_prefetch,
        )
    return PgmqTransport()
