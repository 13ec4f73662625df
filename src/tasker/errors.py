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


class NotFoundError(TaskerError):
    """The requested object does not exist."""

    code = "NOT_FOUND"


class TemplateError(TaskerError):
    """The task template is invalid."""

    code = "BAD_REQUEST"


class TemplateLimitError(TemplateError):
    """The template text is too large, nests too deep or its aliases expand too far to be loaded safely."""


class TemplateNotFoundError(NotFoundError):
    """No task template is registered under that namespace, name and version."""


class TemplateConflictError(TaskerError):
    """A different template is already registered under this namespace, name and version."""

    code = "CONFLICT"


class InvalidTaskRequestError(TaskerError):
    """The task request is invalid."""

    code = "BAD_REQUEST"


class InvalidContextError(TaskerError):
    """The task context does not satisfy the template's input schema."""

    code = "UNPROCESSABLE_ENTITY"


class DuplicateTaskError(TaskerError):
    """A task with this identity already exists."""

    code = "CONFLICT"


class InvalidTransitionError(TaskerError):
    """The state machine does not allow this transition."""

    code = "CONFLICT"


class LostRaceError(TaskerError):
    """Another process changed the state first; nothing was written."""

    code = "CONFLICT"


class InvalidScheduleError(InvalidTaskRequestError):
    """The schedule is invalid (its cron expression, time zone or task request)."""


class ScheduleConflictError(TaskerError):
    """A schedule with this name already exists."""

    code = "CONFLICT"


class InvalidEventQueryError(TaskerError):
    """The domain event query is invalid."""

    code = "BAD_REQUEST"
