"""Template registration on real PostgreSQL: idempotent, conflict-safe, versioned, round-tripping."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tasker.errors import TemplateConflictError, TemplateError, TemplateNotFoundError
from tasker.model.template import TaskTemplate, load_template_file, load_template_paths, load_template_text
from tasker.store.db import Connection
from tasker.store.templates import (
    template_get,
    template_get_by_uuid,
    template_list,
    template_register,
    template_register_paths,
    template_register_tree,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "fixtures" / "templates"
ORDER = TEMPLATES / "workflows" / "order_fulfillment.yaml"


async def snapshot(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of the four registry tables, to prove that a refused registration wrote nothing."""
    tables = ("task_namespaces", "named_tasks", "named_steps", "named_tasks_named_steps")
    return {t: await (await conn.execute(f"SELECT * FROM tasker.{t} ORDER BY 1")).fetchall() for t in tables}


def with_changes(template: TaskTemplate, **changes: Any) -> TaskTemplate:
    return TaskTemplate.model_validate({**template.to_configuration(), **changes})


async def test_register_creates_rows_and_round_trips(conn: Connection) -> None:
    template = load_template_file(ORDER)
    result = await template_register(conn, template)
    assert (result.status, result.namespace, result.name, result.version) == (
        "created",
        "order_fulfillment",
        "business_workflow",
        "1.0.0",
    )
    named_task_uuid, stored = await template_get(conn, "order_fulfillment", "business_workflow", "1.0.0")
    assert named_task_uuid == result.named_task_uuid
    assert stored == template
    assert await template_get_by_uuid(conn, named_task_uuid) == template
    row = await (
        await conn.execute(
            "SELECT configuration, description FROM tasker.named_tasks WHERE named_task_uuid = %s", [named_task_uuid]
        )
    ).fetchone()
    assert row is not None
    assert TaskTemplate.model_validate(row["configuration"]) == template
    assert row["description"] == template.description
    links = await (
        await conn.execute(
            """SELECT s.name, l.default_retryable, l.default_max_attempts
               FROM tasker.named_tasks_named_steps l JOIN tasker.named_steps s USING (named_step_uuid)
               WHERE l.named_task_uuid = %s ORDER BY s.name""",
            [named_task_uuid],
        )
    ).fetchall()
    assert [(r["name"], r["default_retryable"], r["default_max_attempts"]) for r in links] == [
        ("process_payment", True, 2),
        ("reserve_inventory", True, 3),
        ("ship_order", True, 3),
        ("validate_order", True, 3),
    ]


async def test_same_template_again_is_unchanged_and_writes_nothing(conn: Connection) -> None:
    template = load_template_file(ORDER)
    first = await template_register(conn, template)
    before = await snapshot(conn)
    again = await template_register(conn, load_template_file(ORDER))
    assert again.status == "unchanged"
    assert again.named_task_uuid == first.named_task_uuid
    assert await snapshot(conn) == before


async def test_changed_template_same_version_conflicts_and_writes_nothing(conn: Connection) -> None:
    template = load_template_file(ORDER)
    await template_register(conn, template)
    before = await snapshot(conn)
    changed = with_changes(template, description="a different meaning")
    with pytest.raises(TemplateConflictError) as caught:
        await template_register(conn, changed)
    assert "order_fulfillment/business_workflow:1.0.0" in caught.value.message
    assert "bump the version" in caught.value.message and "force" in caught.value.message
    assert await snapshot(conn) == before


async def test_a_template_read_before_a_forced_update_is_not_served_after_it(conn: Connection) -> None:
    """template_get keeps parsed templates by a digest of their configuration: reading one, then updating it, returns
    the new configuration."""
    template = load_template_file(ORDER)
    await template_register(conn, template)
    _, before = await template_get(conn, "order_fulfillment", "business_workflow", "1.0.0")
    assert before == template
    configuration = template.to_configuration()
    configuration["steps"][0]["retry"]["max_attempts"] = 9
    changed = TaskTemplate.model_validate(configuration)
    assert (await template_register(conn, changed, force=True)).status == "updated"
    _, after = await template_get(conn, "order_fulfillment", "business_workflow", "1.0.0")
    assert after == changed and after.steps[0].retry.max_attempts == 9


async def test_forced_update_replaces_configuration_and_step_links(conn: Connection) -> None:
    template = load_template_file(ORDER)
    first = await template_register(conn, template)
    configuration = template.to_configuration()
    configuration["steps"] = configuration["steps"][:3]
    configuration["steps"][2]["retry"]["max_attempts"] = 7
    changed = TaskTemplate.model_validate(configuration)
    result = await template_register(conn, changed, force=True)
    assert (result.status, result.named_task_uuid) == ("updated", first.named_task_uuid)
    _, stored = await template_get(conn, "order_fulfillment", "business_workflow", "1.0.0")
    assert stored == changed
    links = await (
        await conn.execute(
            """SELECT s.name, l.default_max_attempts FROM tasker.named_tasks_named_steps l
               JOIN tasker.named_steps s USING (named_step_uuid) WHERE l.named_task_uuid = %s ORDER BY s.name""",
            [first.named_task_uuid],
        )
    ).fetchall()
    assert [(r["name"], r["default_max_attempts"]) for r in links] == [
        ("process_payment", 7),
        ("reserve_inventory", 3),
        ("validate_order", 3),
    ]
    assert (await template_register(conn, changed, force=True)).status == "unchanged"


async def test_new_version_sits_beside_the_old(conn: Connection) -> None:
    template = load_template_file(ORDER)
    old = await template_register(conn, template)
    new = await template_register(conn, with_changes(template, version="1.1.0", description="v1.1"))
    assert new.status == "created" and new.named_task_uuid != old.named_task_uuid
    listed = await template_list(conn, "order_fulfillment")
    assert [(t.version, t.description, t.step_count) for t in listed] == [
        ("1.0.0", template.description, 4),
        ("1.1.0", "v1.1", 4),
    ]
    namespaces = await (await conn.execute("SELECT count(*) AS n FROM tasker.task_namespaces")).fetchone()
    steps = await (await conn.execute("SELECT count(*) AS n FROM tasker.named_steps")).fetchone()
    assert namespaces == {"n": 1}
    assert steps == {"n": 4}  # step names are global: the new version reuses them


async def test_register_paths_all_fixtures_and_list(conn: Connection) -> None:
    results = await template_register_paths(conn, TEMPLATES)
    assert len(results) == 34 and {r.status for r in results} == {"created"}
    listed = await template_list(conn)
    assert len(listed) == 34
    assert [(t.namespace, t.name) for t in listed] == sorted((t.namespace, t.name) for t in listed)
    csv = next(t for t in listed if t.name == "csv_product_inventory_analyzer")
    assert (csv.namespace, csv.version, csv.step_count) == ("csv_processing", "1.0.0", 3)
    assert {t.name for t in await template_list(conn, "test_sql")} == {
        "boundary_max_attempts_zero",
        "boundary_max_attempts_one",
        "boundary_max_attempts_three",
        "boundary_non_retryable_first",
        "boundary_non_retryable_retries",
    }
    assert await template_list(conn, "nope") == []
    for path, template in load_template_paths(TEMPLATES):
        _, stored = await template_get(conn, template.namespace_name, template.name, template.version)
        assert stored == template, path
    again = await template_register_paths(conn, TEMPLATES)
    assert {r.status for r in again} == {"unchanged"}


async def test_register_paths_is_all_or_nothing(conn: Connection, tmp_path: Path) -> None:
    await template_register(conn, load_template_file(ORDER))
    before = await snapshot(conn)
    good = (TEMPLATES / "workflows" / "linear.yaml").read_text()
    (tmp_path / "a_good.yaml").write_text(good)
    (tmp_path / "b_bad.yaml").write_text(
        good.replace("mathematical_sequence", "other").replace("[linear_step_3]", "[nope]")
    )
    with pytest.raises(TemplateError, match=r"b_bad\.yaml: step 'linear_step_4': unknown dependency 'nope'"):
        await template_register_paths(conn, tmp_path)
    assert await snapshot(conn) == before
    conflicting = ORDER.read_text().replace("Validate, reserve", "Now validate, reserve")
    (tmp_path / "b_bad.yaml").write_text(conflicting)
    with pytest.raises(TemplateConflictError):
        await template_register_paths(conn, tmp_path)
    assert await snapshot(conn) == before  # the linear template registered first was rolled back too


async def test_registration_inside_caller_transaction_rolls_back_with_it(conn: Connection) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with conn.transaction():
            await template_register(conn, load_template_file(ORDER))
            raise Abort
    assert await template_list(conn) == []


async def test_get_missing_names_all_three_values(conn: Connection) -> None:
    with pytest.raises(TemplateNotFoundError) as caught:
        await template_get(conn, "ns_x", "name_y", "9.9.9")
    message = caught.value.message
    assert "'ns_x'" in message and "'name_y'" in message and "'9.9.9'" in message
    missing = uuid.uuid4()
    with pytest.raises(TemplateNotFoundError, match=str(missing)):
        await template_get_by_uuid(conn, missing)


async def test_long_description_is_cut_for_the_column_but_kept_in_configuration(conn: Connection) -> None:
    text = "name: long\nnamespace_name: ns\nversion: '1'\ndescription: " + "d" * 300 + "\nsteps:\n"
    text += "  - {name: long_step, description: " + "s" * 300 + ", handler: {callable: m.A}}\n"
    template = load_template_text(text, "long.yaml")
    result = await template_register(conn, template)
    summary = (await template_list(conn))[0]
    assert summary.description == "d" * 255
    assert (await template_get_by_uuid(conn, result.named_task_uuid)).description == "d" * 300


async def test_stored_configuration_written_elsewhere_compares_by_meaning(conn: Connection) -> None:
    """A configuration stored without defaults (as another tool might) is the same template, not a conflict."""
    template = load_template_file(TEMPLATES / "retry" / "always_fail.yaml")
    result = await template_register(conn, template)
    minimal = {
        "name": template.name,
        "namespace_name": template.namespace_name,
        "version": template.version,
        "description": template.description,
        "steps": [
            {
                "name": "always_fail",
                "handler": {"callable": "tests.handlers.scenarios.AlwaysFail"},
                "retry": {"max_attempts": 3, "backoff_base_ms": 100, "max_backoff_ms": 1000},
            }
        ],
    }
    await conn.execute(
        "UPDATE tasker.named_tasks SET configuration = %s::jsonb WHERE named_task_uuid = %s",
        [json.dumps(minimal), result.named_task_uuid],
    )
    assert (await template_register(conn, template)).status == "unchanged"


async def test_register_tree_registers_every_valid_file_and_reports_each_refused_one(
    conn: Connection, tmp_path: Path
) -> None:
    await template_register(conn, load_template_file(ORDER))
    good = (TEMPLATES / "workflows" / "linear.yaml").read_text()
    (tmp_path / "a_good.yaml").write_text(good)
    (tmp_path / "b_bad.yaml").write_text(
        good.replace("mathematical_sequence", "other").replace("[linear_step_3]", "[nope]")
    )
    (tmp_path / "c_conflict.yaml").write_text(ORDER.read_text().replace("Validate, reserve", "Now validate, reserve"))
    (tmp_path / "d_good.yaml").write_text(good.replace("mathematical_sequence", "second_sequence"))
    done = await template_register_tree(conn, tmp_path)
    assert sorted(r.name for r in done.registered) == ["mathematical_sequence", "second_sequence"]
    assert [path.name for path, _ in done.refused] == ["b_bad.yaml", "c_conflict.yaml"]
    assert "unknown dependency 'nope'" in done.refused[0][1]
    assert "already registered with different content" in done.refused[1][1]
    listed = {t.name for t in await template_list(conn)}
    assert {"mathematical_sequence", "second_sequence"} <= listed and "other" not in listed
