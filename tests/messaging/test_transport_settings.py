"""Choosing the transport: ``TASKER_TRANSPORT`` and the RabbitMQ settings, the broker password kept secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tasker.config import Settings, redacted_settings
from tasker.messaging.factory import make_transport
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.rabbitmq import RabbitMqTransport


def test_pgmq_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKER_TRANSPORT", raising=False)
    assert isinstance(make_transport(Settings(), "postgresql://db"), PgmqTransport)


def test_rabbitmq_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_TRANSPORT", "rabbitmq")
    monkeypatch.setenv("TASKER_QUEUE_PREFIX", "staging_")
    settings = Settings()
    assert settings.rabbitmq_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert isinstance(make_transport(settings, "postgresql://db"), RabbitMqTransport)


def test_an_unknown_transport_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_TRANSPORT", "kafka")
    with pytest.raises(ValidationError, match="transport"):
        Settings()


def test_the_broker_url_is_redacted_where_settings_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_RABBITMQ_URL", "amqp://app:hunter2@broker:5672/prod")
    settings = Settings()
    shown = redacted_settings(settings)
    assert "hunter2" not in repr(settings) and "hunter2" not in str(shown)
    assert shown["rabbitmq_url"] == "**********"
