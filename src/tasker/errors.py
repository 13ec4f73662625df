"""Every error Tasker raises derives from :class:`TaskerError`; the docstring of each class is its default message.

Faces translate these into their own shapes (HTTP status codes live only in ``tasker.api``).
"""

from __future__ import annotations

from typing import Any


class TaskerError(Exception):
    """Tasker failed."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        super().__init__(self.message)


class ConfigurationError(TaskerError):
    """The configuration is invalid."""

    code = "CONFIGURATION_ERROR"


class DatabaseUnavailableError(TaskerError):
    """The database could not be reached."""

    code = "SERVICE_UNAVAILABLE"


class MigrationError(TaskerError):
    """A migration failed; nothing of it was applied."""

    code = "MIGRATION_ERROR"
