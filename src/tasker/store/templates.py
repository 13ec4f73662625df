"""Template registry: task templates stored in ``named_tasks.configuration`` keyed by (namespace, name, version).

Registration is idempotent (the same template again writes nothing) and refuses to silently change what a version
means: a different template under a registered version is a conflict unless forced. A new version is a new row
beside the old one, so running tasks keep the template they were created with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from tasker.errors import TemplateConflictError, TemplateError, TemplateNotFoundError
from tasker.model.template import TaskTemplate, load_template_paths, load_template_tree
from tasker.store.db import Connection
from tasker.store.queries import Q

RegistrationStatus = Literal["created", "unchanged", "updated"]

DESCRIPTION_CHARS = 255  # named_tasks.description and named_steps.description are varchar(255)
RACE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Registration:
    named_task_uuid: UUID
    namespace: str
    name: str
    version: str
    status: RegistrationStatus


@dataclass(frozen=True, slots=True)
class TemplateSummary:
    namespace: str
    name: str
    version: str
    description: str | None
    step_count: int
    named_task_uuid: UUID


def _short(text: str | None) -> str | None:
    """Descriptions are free text in the template but bounded columns; the full text stays in configuration."""
    return None if text is None else text[:DESCRIPTION_CHARS]


def _key_params(template: TaskTemplate) -> dict[str, Any]:
    return {"namespace": template.namespace_name, "name": template.name, "version": template.version}


def _same_template(stored: Any, template: TaskTemplate) -> bool:
    """Compare through the model so JSON written by other tools (defaults omitted, other key order) still matches."""
    try:
        return TaskTemplate.model_validate(stored).to_configuration() == template.to_configuration()
    except (TemplateError, ValueError):
        return False


async def template_register(conn: Connection, template: TaskTemplate, *, force: bool = False) -> Registration:
    """Register one template in its own transaction (a savepoint inside the caller's)."""
    async with conn.transaction():
        for _ in range(RACE_RETRIES):
            existing = await (await conn.execute(Q["template_find_for_update"], _key_params(template))).fetchone()
            if existing is not None:
                return await _register_existing(conn, template, existing, force)
            named_task_uuid = await _insert(conn, template)
            if named_task_uuid is not None:
                await _sync_steps(conn, named_task_uuid, template)
                return _registration(named_task_uuid, template, "created")
    raise TemplateError(f"{template.key}: registration kept racing with concurrent registrations; try again")


async def _register_existing(
    conn: Connection, template: TaskTemplate, existing: dict[str, Any], force: bool
) -> Registration:
    named_task_uuid: UUID = existing["named_task_uuid"]
    if _same_template(existing["configuration"], template):
        return _registration(named_task_uuid, template, "unchanged")
    if not force:
        raise TemplateConflictError(
            f"template {template.key} is already registered with different content; "
            "bump the version to register a changed template, or force the replacement",
            namespace=template.namespace_name,
            name=template.name,
            version=template.version,
        )
    await conn.execute(
        Q["template_update"],
        {
            "named_task_uuid": named_task_uuid,
            "configuration": Jsonb(template.to_configuration()),
            "description": _short(template.description),
        },
    )
    await _sync_steps(conn, named_task_uuid, template)
    return _registration(named_task_uuid, template, "updated")


async def _insert(conn: Connection, template: TaskTemplate) -> UUID | None:
    params = {
        **_key_params(template),
        "description": _short(template.description),
        "configuration": Jsonb(template.to_configuration()),
    }
    row = await (await conn.execute(Q["template_insert"], params)).fetchone()
    return None if row is None else row["named_task_uuid"]


async def _sync_steps(conn: Connection, named_task_uuid: UUID, template: TaskTemplate) -> None:
    params = {
        "named_task_uuid": named_task_uuid,
        "names": [step.name for step in template.steps],
        "descriptions": [_short(step.description) for step in template.steps],
        "retryable": [step.retry.retryable for step in template.steps],
        "max_attempts": [step.retry.max_attempts for step in template.steps],
    }
    for _ in range(RACE_RETRIES):
        row = await (await conn.execute(Q["template_steps_sync"], params)).fetchone()
        if row is not None and row["linked"] == len(template.steps):
            return
    raise TemplateError(f"{template.key}: could not link its steps (concurrent registrations); try again")


def _registration(named_task_uuid: UUID, template: TaskTemplate, status: RegistrationStatus) -> Registration:
    return Registration(named_task_uuid, template.namespace_name, template.name, template.version, status)


@dataclass(frozen=True)
class TreeRegistration:
    """What registering a directory tree did: each valid template registered, each refused file with why."""

    registered: list[Registration]
    refused: list[tuple[Path, str]]


async def template_register_tree(conn: Connection, path: str | Path, *, force: bool = False) -> TreeRegistration:
    """Register every valid template file below ``path``, each in its own transaction: a bad file (invalid, a
    duplicate, or a changed template under a registered version) is refused on its own and blocks no other."""
    tree = load_template_tree(path)
    registered: list[Registration] = []
    refused = list(tree.refused)
    for file, template in tree.loaded:
        try:
            registered.append(await template_register(conn, template, force=force))
        except (TemplateError, TemplateConflictError) as exc:
            refused.append((file, f"{file}: {exc.message}"))
    refused.sort(key=lambda item: str(item[0]))
    return TreeRegistration(registered, refused)


async def template_register_paths(conn: Connection, path: str | Path, *, force: bool = False) -> list[Registration]:
    """Register a file or directory tree all-or-nothing: every file is validated before anything is written."""
    loaded = load_template_paths(path)
    async with conn.transaction():
        return [await template_register(conn, template, force=force) for _, template in loaded]


def _template_from_row(row: dict[str, Any], label: str) -> TaskTemplate:
    return TaskTemplate.model_validate(row["configuration"], context={"source": label})


# Parsed templates by (named task, digest of the stored configuration): validating a template costs more than
# reading it, and task creation reads one per task. A re-registration changes the digest, so an entry is never
# stale; the cache is emptied when it grows past its bound (templates are few; this only stops unbounded growth).
_PARSED: dict[tuple[UUID, str], TaskTemplate] = {}
_PARSED_MAX = 512


@dataclass(frozen=True)
class TemplateRef:
    """A registered template as read at one moment: its named task, the digest of its stored configuration (which
    a re-registration changes) and the parsed template."""

    named_task_uuid: UUID
    digest: str
    template: TaskTemplate


# The last template read under each (namespace, name, version), for task creation: it creates from this copy
# without reading the template again, and its create statement checks the digest, so a copy made stale by a
# re-registration fails the check and is read again (store.tasks.task_create, TemplateChangedError).
_BY_NAME: dict[tuple[str, str, str], TemplateRef] = {}


async def template_get(conn: Connection, namespace: str, name: str, version: str) -> tuple[UUID, TaskTemplate]:
    ref = await template_get_ref(conn, namespace, name, version)
    return ref.named_task_uuid, ref.template


async def template_get_ref(
    conn: Connection, namespace: str, name: str, version: str, *, cached: bool = False
) -> TemplateRef:
    """The template a request names; ``cached``: the copy read last in this process, if any, without a round trip
    (for callers that check its digest as they use it)."""
    key = (namespace, name, version)
    if cached and (ref := _BY_NAME.get(key)) is not None:
        return ref
    params = {"namespace": namespace, "name": name, "version": version}
    row = await (await conn.execute(Q["template_get"], params)).fetchone()
    if row is None:
        _BY_NAME.pop(key, None)
        raise TemplateNotFoundError(
            f"no task template {namespace}/{name}:{version} (namespace {namespace!r}, name {name!r}, "
            f"version {version!r})",
            **params,
        )
    parsed_key = (row["named_task_uuid"], row["digest"])
    template = _PARSED.get(parsed_key)
    if template is None:
        template = _template_from_row(row, f"{namespace}/{name}:{version}")
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
            _BY_NAME.clear()
        _PARSED[parsed_key] = template
    ref = TemplateRef(row["named_task_uuid"], row["digest"], template)
    _BY_NAME[key] = ref
    return ref


async def template_get_by_uuid(conn: Connection, named_task_uuid: UUID) -> TaskTemplate:
    row = await (await conn.execute(Q["template_get_by_uuid"], {"named_task_uuid": named_task_uuid})).fetchone()
    if row is None:
        raise TemplateNotFoundError(
            f"no task template with named_task_uuid {named_task_uuid}", named_task_uuid=str(named_task_uuid)
        )
    return _template_from_row(row, f"named task {named_task_uuid}")


async def template_list(conn: Connection, namespace: str | None = None) -> list[TemplateSummary]:
    rows = await (await conn.execute(Q["template_list"], {"namespace": namespace})).fetchall()
    return [TemplateSummary(**row) for row in rows]
