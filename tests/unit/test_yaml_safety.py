"""Template YAML cannot exhaust the process: alias bombs, deep nesting, recursive aliases and huge texts are
refused with a TemplateError naming the problem, while ordinary anchors and merge keys still load."""

from __future__ import annotations

import textwrap

import pytest

from tasker.errors import TemplateError, TemplateLimitError
from tasker.model.template import (
    MAX_TEMPLATE_ALIAS_EXPANSION,
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATE_DEPTH,
    load_template_text,
)


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: each level repeats the previous one nine times (9**9 leaves from ~400 bytes)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for level in range(1, levels):
        previous, name = names[level - 1], names[level]
        lines.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
    return "\n".join(lines) + "\n"


def refused(text: str) -> str:
    with pytest.raises(TemplateLimitError) as caught:
        load_template_text(text, "bomb.yaml")
    assert isinstance(caught.value, TemplateError)  # callers that handle template errors handle these too
    assert "\n" not in caught.value.message  # one line for the CLI
    return caught.value.message


def test_the_bomb_is_short_text() -> None:
    assert len(billion_laughs()) < 500


def test_an_alias_bomb_is_refused() -> None:
    message = refused(billion_laughs())
    assert message.startswith("bomb.yaml: ")
    assert "alias" in message
    assert str(MAX_TEMPLATE_ALIAS_EXPANSION) in message


def test_a_bomb_inside_a_real_template_is_refused() -> None:
    text = "name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps: []\nmetadata:\n" + textwrap.indent(
        billion_laughs(), "  "
    )
    assert "alias" in refused(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1000,
        "[" * 1000 + "]" * 1000,
        "{a: " * 1000 + "1" + "}" * 1000,
        "".join(f"{'  ' * depth}k:\n" for depth in range(300)) + "  " * 300 + "v\n",
        "- " * 500 + "x\n",
    ],
    ids=["unclosed-flow-sequences", "closed-flow-sequences", "flow-mappings", "block-mappings", "block-sequences"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    message = refused(text)
    assert "nest" in message
    assert str(MAX_TEMPLATE_DEPTH) in message


def test_nesting_built_from_aliases_is_refused() -> None:
    """Each alias adds the depth of what it names: 40 levels, five times over, nest 200 deep once expanded."""
    chunk = "[" * 40 + "x" + "]" * 40
    lines = [f"a: &a {chunk}"]
    for previous, name in zip("abcd", "bcde", strict=True):
        lines.append(f"{name}: &{name} {'[' * 40}*{previous}{']' * 40}")
    message = refused("\n".join(lines) + "\n")
    assert "nest" in message


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"])
def test_recursive_aliases_are_refused(text: str) -> None:
    assert "recursive" in refused(text)


def test_a_huge_text_is_refused_before_parsing() -> None:
    message = refused("x: " + "y" * MAX_TEMPLATE_CHARS + "\n")
    assert str(MAX_TEMPLATE_CHARS) in message


LEGITIMATE = """\
name: shared_settings
namespace_name: ns
version: 1.0.0
x-retry: &retry
  retryable: true
  max_attempts: 5
  backoff: linear
x-handler: &handler
  callable: app.handlers.Step
  initialization: &init {region: eu, tries: [1, 2, 3]}
steps:
  - name: a
    handler: *handler
    retry: *retry
  - name: b
    handler:
      <<: *handler
      initialization: {<<: *init, region: us}
    retry: *retry
    dependencies: [a]
  - name: c
    handler: *handler
    retry: {<<: *retry, max_attempts: 2}
    dependencies: [b]
"""


def test_templates_with_a_few_anchors_and_merge_keys_still_load() -> None:
    template = load_template_text(LEGITIMATE, "shared.yaml")
    steps = {step.name: step for step in template.steps}
    assert steps["a"].retry.max_attempts == 5
    assert steps["b"].handler.initialization == {"region": "us", "tries": [1, 2, 3]}
    assert steps["c"].retry.max_attempts == 2
    assert steps["c"].retry.backoff == "linear"


def test_nesting_just_under_the_limit_loads() -> None:
    deep = "[" * (MAX_TEMPLATE_DEPTH - 3) + "]" * (MAX_TEMPLATE_DEPTH - 3)
    template = load_template_text(f"name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps: []\nx-deep: {deep}\n")
    assert template.name == "t"


def test_many_aliases_within_the_budget_load() -> None:
    """Fifty steps sharing one retry policy and one handler: a few hundred expanded nodes, far under the budget."""
    steps = "".join(f"  - {{name: s{i}, handler: *h, retry: *r}}\n" for i in range(50))
    head = "name: t\nnamespace_name: ns\nversion: 1.0.0\nx-h: &h {callable: app.H}\nx-r: &r {max_attempts: 4}\n"
    template = load_template_text(head + "steps:\n" + steps)
    assert len(template.steps) == 50
    assert all(step.retry.max_attempts == 4 for step in template.steps)
