"""``GET /v1/events``: durable domain events in commit order, paged by cursor (``events:read``), on
``tasker.store.events``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request

from tasker.api.auth import require
from tasker.model.events import DomainEventListResponse, DomainEventResponse, Patterns
from tasker.store.db import Connection
from tasker.store.events import MAX_PAGE, EventFilter, domain_event_list_many

Db = Callable[[Request], AbstractAsyncContextManager[Connection]]


def register(app: FastAPI, db: Db) -> None:
    """Add the events route to ``app`` (``db`` gives a pooled connection)."""

    @app.get(
        "/v1/events",
        tags=["events"],
        response_model=DomainEventListResponse,
        dependencies=[Depends(require("events:read"))],
    )
    async def list_events(
        request: Request,
        name: Annotated[
            list[str] | None,
            Query(max_length=255, description="event name, exact or a glob (`order.*`); repeat for several"),
        ] = None,
        namespace: Annotated[str | None, Query(max_length=255)] = None,
        task_uuid: UUID | None = None,
        after: Annotated[UUID | None, Query(description="cursor: the id of the last event already read")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> DomainEventListResponse:
        where = EventFilter(namespace=namespace, task_uuid=task_uuid, names=Patterns(name or ()))
        async with db(request) as conn:
            page = await domain_event_list_many(conn, where, after=after, limit=limit)
        events = [DomainEventResponse.model_validate(e.as_dict()) for e in page.events]
        return DomainEventListResponse(
            events=events,
            count=len(events),
            next_after=events[-1].event_uuid if events else after,
            has_more=len(events) == limit,
            held_back=page.held_back,
        )
