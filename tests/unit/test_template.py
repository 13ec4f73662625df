"""Task templates: loading, validation messages, environment overrides and the graph helpers (reference §5)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tasker.errors import TemplateError
from tasker.model.template import (
    TaskTemplate,
    load_template_file,
    load_template_paths,
    load_template_text,
    template_warnings,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "fixtures" / "templates"
WORKFLOWS = TEMPLATES / "workflows"


def template_text(steps: str, extra: str = "") -> str:
    head = "name: t\nnamespace_name: ns\nversion: 1.0.0\n" + textwrap.dedent(extra)
    return head + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")


def load(steps: str, extra: str = "") -> TaskTemplate:
    return load_template_text(template_text(steps, extra), "templates/x.yaml")


def refused(steps: str, extra: str = "") -> str:
    with pytest.raises(TemplateError) as caught:
        load(steps, extra)
    return caught.value.message


# --- fixtures and their initial step sets -------------------------------------------------------------------------

EXPECTED_INITIAL = {
    "linear.yaml": (
        ["linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"],
        [("linear_step_1", "linear_step_2"), ("linear_step_2", "linear_step_3"), ("linear_step_3", "linear_step_4")],
    ),
    "diamond.yaml": (
        ["diamond_start", "diamond_branch_b", "diamond_branch_c", "diamond_end"],
        [
            ("diamond_start", "diamond_branch_b"),
            ("diamond_start", "diamond_branch_c"),
            ("diamond_branch_b", "diamond_end"),
            ("diamond_branch_c", "diamond_end"),
        ],
    ),
    "conditional_approval.yaml": (["validate_request", "routing_decision"], [("validate_request", "routing_decision")]),
    "csv_batch.yaml": (["analyze_csv"], []),
}


@pytest.mark.parametrize("file_name", sorted(EXPECTED_INITIAL))
def test_fixture_initial_steps_and_edges(file_name: str) -> None:
    template = load_template_file(WORKFLOWS / file_name)
    names, edges = EXPECTED_INITIAL[file_name]
    assert template.initial_step_names() == names
    assert template.initial_edges() == edges


def test_every_fixture_loads_and_round_trips() -> None:
    loaded = load_template_paths(TEMPLATES)
    assert len(loaded) == 34
    for path, template in loaded:
        assert template.unknown_keys() == [], path
        again = TaskTemplate.model_validate(template.to_configuration())
        assert again == template, path
        assert again.to_configuration() == template.to_configuration()


def test_tree_and_mixed_dag_shapes() -> None:
    tree = load_template_file(WORKFLOWS / "tree.yaml")
    assert tree.parents("tree_final_convergence") == ["tree_leaf_d", "tree_leaf_e", "tree_leaf_f", "tree_leaf_g"]
    assert tree.children("tree_root") == ["tree_branch_left", "tree_branch_right"]
    assert len(tree.initial_edges()) == 10
    dag = load_template_file(WORKFLOWS / "mixed_dag.yaml")
    assert dag.children("dag_process_left") == ["dag_validate", "dag_transform"]
    assert dag.descendants("dag_process_right") == {"dag_validate", "dag_analyze", "dag_finalize"}
    assert dag.descendants("dag_finalize") == set()
    assert len(dag.initial_edges()) == 9


def test_order_fulfillment_details() -> None:
    template = load_template_file(WORKFLOWS / "order_fulfillment.yaml")
    assert template.parents("ship_order") == ["validate_order", "reserve_inventory", "process_payment"]
    assert template.step("process_payment").retry.max_attempts == 2
    assert template.input_schema is not None
    assert template.input_schema["required"] == ["customer", "items", "payment", "shipping"]
    assert template.lifecycle is not None and template.lifecycle.max_steps_in_process_minutes == 10
    event = template.step("process_payment").publishes_events[0]
    assert event.schema_ == {"type": "object", "required": ["order_id", "amount"]}


def test_boundary_and_retry_fixtures() -> None:
    by_name = {t.name: t for _, t in load_template_paths(TEMPLATES)}
    attempts = {
        name: (t.steps[0].retry.retryable, t.steps[0].retry.max_attempts)
        for name, t in by_name.items()
        if len(t.steps) == 1
    }
    assert attempts["boundary_max_attempts_zero"] == (True, 0)
    assert attempts["boundary_max_attempts_one"] == (True, 1)
    assert attempts["boundary_max_attempts_three"] == (True, 3)
    assert attempts["boundary_non_retryable_first"] == (False, 1)
    assert attempts["boundary_non_retryable_retries"] == (False, 3)
    assert attempts["retry_mechanics_test"] == (True, 5)
    assert attempts["retry_exhaustion_test"] == (True, 3)


def test_decision_descendants_excluded_but_unrelated_convergence_kept() -> None:
    template = load(
        """
        - {name: a, handler: {callable: m.A}}
        - {name: d, type: decision, depends_on: [a], handler: {callable: m.D}}
        - {name: x, depends_on: [d], handler: {callable: m.X}}
        - {name: y, depends_on: [x], handler: {callable: m.Y}}
        - {name: side, depends_on: [a], handler: {callable: m.S}}
        - {name: join, type: deferred_convergence, depends_on: [side], handler: {callable: m.J}}
        - {name: w, type: batch_worker, depends_on: [a], handler: {callable: m.W}}
        """
    )
    assert template.initial_step_names() == ["a", "d", "side", "join"]
    assert template.initial_edges() == [("a", "d"), ("a", "side"), ("side", "join")]


def test_without_decisions_convergence_and_workers_are_not_initial() -> None:
    template = load(
        """
        - {name: a, handler: {callable: m.A}}
        - {name: w, type: batch_worker, depends_on: [a], handler: {callable: m.W}}
        - {name: c, type: deferred_convergence, depends_on: [w], handler: {callable: m.C}}
        - {name: after, depends_on: [a], handler: {callable: m.X}}
        """
    )
    assert template.initial_step_names() == ["a", "after"]
    assert template.initial_edges() == [("a", "after")]


# --- aliases, defaults, unknown keys ------------------------------------------------------------------------------


def test_aliases_defaults_and_unknown_keys_kept() -> None:
    template = load(
        """
        - name: a
          step_type: standard
          handler: {callable: m.A}
          future_field: {x: 1}
        - name: b
          dependencies: [a]
          handler: {callable: m.B, method: run}
        """,
        extra="vendor_extension: true\ncreated: 2024-01-02\n",
    )
    assert template.identity_strategy == "strict"
    assert template.parents("b") == ["a"]
    assert template.step("b").handler.method == "run"
    step_a = template.step("a")
    assert (step_a.type, step_a.retry.max_attempts, step_a.retry.backoff) == ("standard", 3, "exponential")
    assert step_a.retry.backoff_base_ms == 1000 and step_a.retry.max_backoff_ms == 30000
    assert template.unknown_keys() == ["created", "steps[a].future_field", "vendor_extension"]
    configuration = template.to_configuration()
    assert configuration["vendor_extension"] is True
    assert configuration["created"] == "2024-01-02"
    assert configuration["steps"][0]["type"] == "standard"
    assert TaskTemplate.model_validate(configuration) == template


def test_numeric_version_is_text() -> None:
    template = load_template_text("name: t\nnamespace_name: n\nversion: 2.5\nsteps: []\n", "v.yaml")
    assert template.version == "2.5"
    assert template.key == "n/t:2.5"


# --- validation messages ------------------------------------------------------------------------------------------


def test_unknown_dependency_named() -> None:
    message = refused(
        """
        - {name: validate, handler: {callable: m.V}}
        - {name: charge, depends_on: [validat], handler: {callable: m.C}}
        """
    )
    assert message == "templates/x.yaml: step 'charge': unknown dependency 'validat'"


def test_cycle_reported_with_path() -> None:
    message = refused(
        """
        - {name: start, handler: {callable: m.S}}
        - {name: a, depends_on: [start, c], handler: {callable: m.A}}
        - {name: b, depends_on: [a], handler: {callable: m.B}}
        - {name: c, depends_on: [b], handler: {callable: m.C}}
        """
    )
    assert message.startswith("templates/x.yaml: step ")
    assert "dependency cycle" in message
    path = message.split("dependency cycle ")[1]
    nodes = path.split(" -> ")
    assert nodes[0] == nodes[-1] and sorted(nodes[:-1]) == ["a", "b", "c"]
    assert path in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c")


def test_self_dependency_is_a_cycle() -> None:
    message = refused("- {name: a, depends_on: [a], handler: {callable: m.A}}\n")
    assert message == "templates/x.yaml: step 'a': dependency cycle a -> a"


def test_duplicate_step_name() -> None:
    message = refused(
        """
        - {name: a, handler: {callable: m.A}}
        - {name: a, handler: {callable: m.B}}
        """
    )
    assert message == "templates/x.yaml: step 'a': duplicate step name"


def test_decision_without_parent() -> None:
    message = refused("- {name: route, type: decision, handler: {callable: m.R}}\n")
    assert message == "templates/x.yaml: step 'route': a decision step needs at least one dependency"


@pytest.mark.parametrize(
    ("retry", "field", "got"),
    [
        ("{max_attempts: 101}", "retry.max_attempts", "101"),
        ("{max_attempts: -1}", "retry.max_attempts", "-1"),
        ("{backoff_base_ms: 0}", "retry.backoff_base_ms", "0"),
        ("{max_backoff_ms: 3600001}", "retry.max_backoff_ms", "3600001"),
        ("{backoff: quadratic}", "retry.backoff", "'quadratic'"),
    ],
)
def test_out_of_range_retry_names_step_and_field(retry: str, field: str, got: str) -> None:
    message = refused(
        f"""
        - {{name: a, handler: {{callable: m.A}}}}
        - {{name: charge, depends_on: [a], handler: {{callable: m.C}}, retry: {retry}}}
        """
    )
    assert message.startswith(f"templates/x.yaml: step 'charge': {field}: ")
    assert message.endswith(f"(got {got})")


def test_out_of_range_batch_and_timeout_and_lifecycle() -> None:
    assert refused(
        """
        - name: w
          type: batch_worker
          handler: {callable: m.W}
          batch_config: {worker_template: w, batch_size: 0}
        """
    ).startswith("templates/x.yaml: step 'w': batch_config.batch_size: Input should be greater than or equal to 1")
    assert refused("- {name: a, handler: {callable: m.A}, timeout_seconds: 0}\n").startswith(
        "templates/x.yaml: step 'a': timeout_seconds: "
    )
    message = refused("- {name: a, handler: {callable: m.A}}\n", extra="lifecycle: {staleness_action: explode}\n")
    assert message.startswith("templates/x.yaml: lifecycle.staleness_action: ")


def test_missing_required_fields_named() -> None:
    assert refused("- {name: a}\n") == "templates/x.yaml: step 'a': handler: Field required"
    message = refused(
        """
        - name: w
          type: batch_worker
          handler: {callable: m.W}
          batch_config: {batch_size: 10}
        """
    )
    assert message == "templates/x.yaml: step 'w': batch_config.worker_template: Field required"
    with pytest.raises(TemplateError, match=r"^t\.yaml: namespace_name: Field required$"):
        load_template_text("name: t\nversion: 1.0.0\nsteps: []\n", "t.yaml")


def test_unknown_step_type() -> None:
    message = refused("- {name: a, type: magic, handler: {callable: m.A}}\n")
    assert message.startswith("templates/x.yaml: step 'a': type: unknown step type 'magic' (")
    assert "'deferred_convergence'" in message


def test_bad_yaml_reports_line() -> None:
    text = "name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: {callable: m.A\n"
    with pytest.raises(TemplateError) as caught:
        load_template_text(text, "templates/bad.yaml")
    assert caught.value.message.startswith("templates/bad.yaml: line 7, column 1: invalid YAML: ")


def test_top_level_not_a_mapping() -> None:
    with pytest.raises(TemplateError, match=r"^l\.yaml: a template must be a mapping of fields, got list$"):
        load_template_text("- a\n- b\n", "l.yaml")


def test_batchable_worker_template_must_exist_and_be_a_worker() -> None:
    message = refused(
        """
        - name: analyze
          type: batchable
          handler: {callable: m.A, initialization: {worker_template_name: proces_batch}}
        - {name: process_batch, type: batch_worker, depends_on: [analyze], handler: {callable: m.P}}
        """
    )
    assert message == (
        "templates/x.yaml: step 'analyze': handler.initialization.worker_template_name: no step named 'proces_batch'"
    )
    message = refused(
        """
        - name: analyze
          type: batchable
          handler: {callable: m.A, initialization: {worker_template_name: plain}}
        - {name: plain, depends_on: [analyze], handler: {callable: m.P}}
        """
    )
    assert message.endswith("step 'plain' is not a batch_worker")


def test_batch_worker_without_batch_config_is_allowed() -> None:
    template = load(
        """
        - {name: analyze, type: batchable, handler: {callable: m.A}}
        - {name: worker, type: batch_worker, depends_on: [analyze], handler: {callable: m.W}}
        """
    )
    assert template.step("worker").batch_config is None


def test_directory_load_reports_every_bad_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "good.yaml").write_text(template_text("- {name: a, handler: {callable: m.A}}\n"))
    (tmp_path / "sub" / "dup.yml").write_text(template_text("- {name: a, handler: {callable: m.A}}\n"))
    (tmp_path / "sub" / "broken.yaml").write_text(
        template_text("- {name: a, depends_on: [zz], handler: {callable: m}}")
    )
    (tmp_path / "notes.txt").write_text("not a template")
    with pytest.raises(TemplateError) as caught:
        load_template_paths(tmp_path)
    lines = caught.value.message.splitlines()
    assert lines[0] == f"{tmp_path / 'sub' / 'broken.yaml'}: step 'a': unknown dependency 'zz'"
    assert (
        lines[1] == f"{tmp_path / 'sub' / 'dup.yml'}: template ns/t:1.0.0 is also defined in {tmp_path / 'good.yaml'}"
    )
    assert len(lines) == 2


def test_missing_path_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no such file or directory"):
        load_template_paths(tmp_path / "absent")
    with pytest.raises(TemplateError, match="cannot read"):
        load_template_file(tmp_path / "absent.yaml")


# --- environments -------------------------------------------------------------------------------------------------


def test_environment_overrides_merge() -> None:
    template = load_template_file(WORKFLOWS / "order_fulfillment.yaml")
    tested = template.for_environment("test")
    payment = tested.step("process_payment")
    assert payment.retry.backoff_base_ms == 100  # from ALL
    assert payment.retry.max_attempts == 2  # kept: retry merges field by field
    assert payment.retry.backoff == "linear"
    assert payment.timeout_seconds == 5
    assert payment.handler.initialization == {"gateway": "sandbox"}
    reserve = tested.step("reserve_inventory")
    assert reserve.handler.initialization == {"reservation_minutes": 15}
    assert reserve.retry.backoff_base_ms == 100 and reserve.timeout_seconds is None
    assert template.step("process_payment").timeout_seconds == 30  # the original is untouched
    assert template.for_environment("production") is template


def test_environment_override_initialization_merges_keys() -> None:
    template = load(
        "- {name: a, handler: {callable: m.A, initialization: {keep: 1, change: 2}}}\n",
        extra="environments:\n  dev:\n    steps:\n      - {name: a, handler: {initialization: {change: 3, add: 4}}}\n",
    )
    assert template.for_environment("dev").step("a").handler.initialization == {"keep": 1, "change": 3, "add": 4}


def test_environment_override_out_of_range_refused() -> None:
    template = load(
        "- {name: a, handler: {callable: m.A}}\n",
        extra="environments:\n  dev:\n    steps:\n      - {name: ALL, retry: {max_attempts: 500}}\n",
    )
    with pytest.raises(TemplateError, match=r"^ns/t:1\.0\.0 environment 'dev': step 'a': retry\.max_attempts: "):
        template.for_environment("dev")


def test_graph_helpers_refuse_unknown_step() -> None:
    template = load("- {name: a, handler: {callable: m.A}}\n")
    with pytest.raises(TemplateError, match="no step named 'b'"):
        template.children("b")


def test_tasker_core_backoff_values_below_the_documented_range_load_with_a_warning() -> None:
    """tasker-core documents backoff_base_ms >= 100 and max_backoff_ms >= 1000 but its own fixtures use 50/200."""
    template = load_template_text(
        """
        name: fast_retries
        namespace_name: compat
        version: 1.0.0
        steps:
          - name: charge
            handler: {callable: m.C}
            retry: {retryable: true, limit: 3, max_attempts: 2, backoff_base_ms: 50, max_backoff_ms: 200}
        """
    )
    assert template.step("charge").retry.backoff_base_ms == 50
    warnings = template_warnings(template)
    assert "compat/fast_retries:1.0.0: step 'charge': retry: key 'limit' is not used and is ignored" in warnings
    assert any("retry.backoff_base_ms 50 is below the documented minimum of 100" in w for w in warnings)
    assert any("retry.max_backoff_ms 200 is below the documented minimum of 1000" in w for w in warnings)
    clean = load_template_text(
        "name: t\nnamespace_name: n\nversion: 1.0.0\nsteps: [{name: a, handler: {callable: m.A}}]\n"
    )
    assert template_warnings(clean) == []


def test_an_unknown_handler_resolver_is_refused_naming_the_choices() -> None:
    message = refused("- {name: a, handler: {callable: m.A, resolver: magic}}\n")
    assert "handler.resolver" in message and "explicit_mapping" in message and "'magic'" in message
