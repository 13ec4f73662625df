"""Templates by id, cached per process: a registered version never changes under running tasks (a changed
template needs a new version, or ``force`` — which operators use knowing running processes keep the old copy)."""

from __future__ import annotations

from uuid import UUID

from tasker.model.template import TaskTemplate
from tasker.store.db import Connection
from tasker.store.templates import template_get_by_uuid


class TemplateCache:
    def __init__(self, env: str) -> None:
        self.env = env
        self._by_uuid: dict[UUID, TaskTemplate] = {}

    async def get(self, conn: Connection, named_task_uuid: UUID) -> TaskTemplate:
        template = self._by_uuid.get(named_task_uuid)
        if template is None:
            template = (await template_get_by_uuid(conn, named_task_uuid)).for_environment(self.env)
            self._by_uuid[named_task_uuid] = template
        return template
