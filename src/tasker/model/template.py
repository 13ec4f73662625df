"""Task templates: the typed tasker-core YAML format, its validation and the graph questions the engine asks.

Templates written for tasker-core must load unchanged, so every model keeps keys it does not know
(``extra="allow"``): they survive into ``named_tasks.configuration`` and back, and :meth:`TaskTemplate.unknown_keys`
lets tooling warn about likely typos instead of refusing them. Every problem is reported as a
:class:`~tasker.errors.TemplateError` whose message names the source file, the step and the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Self

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tasker.errors import TemplateError, TemplateLimitError

Resolver = Literal["explicit_mapping", "class_lookup", "class_constant"]
StepType = Literal["standard", "decision", "deferred_convergence", "batchable", "batch_worker"]
IdentityStrategy = Literal["strict", "caller_provided", "always_unique"]
Backoff = Literal["none", "linear", "exponential", "fibonacci"]
EventCondition = Literal["success", "failure", "retryable_failure", "permanent_failure", "always"]
DeliveryMode = Literal["durable", "fast", "broadcast"]
FailureStrategy = Literal["continue_on_failure", "fail_fast", "isolate"]
StalenessAction = Literal["dlq", "error", "none"]

ALL_STEPS = "ALL"
DEFAULT_SOURCE = "<template>"
TEMPLATE_SUFFIXES = (".yaml", ".yml")


class _Open(BaseModel):
    """Base of every template model: unknown keys are kept (tasker-core compatibility), aliases accepted by name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class TemplateMetadata(_Open):
    author: str | None = None
    tags: list[str] = Field(default_factory=list)
    documentation_url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class SystemDependencies(_Open):
    primary: str = "default"
    secondary: list[str] = Field(default_factory=list)


class DomainEventSchema(_Open):
    """One entry of the template's catalogue of event schemas."""

    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class Lifecycle(_Open):
    """Staleness thresholds; the staleness SQL reads them from ``configuration->'lifecycle'``."""

    max_duration_minutes: int | None = Field(default=None, gt=0)
    max_waiting_for_dependencies_minutes: int | None = Field(default=None, gt=0)
    max_waiting_for_retry_minutes: int | None = Field(default=None, gt=0)
    max_steps_in_process_minutes: int | None = Field(default=None, gt=0)
    staleness_action: StalenessAction = "dlq"
    auto_fail_on_timeout: bool | None = None
    auto_dlq_on_timeout: bool | None = None


class HandlerDefinition(_Open):
    """``resolver`` forces how ``callable`` is found, as in tasker-core: ``explicit_mapping`` only looks in the
    worker's registry, ``class_lookup`` (``class_constant`` is Ruby's name for it) only imports the dotted path;
    without it the registry is tried first, then the import. Any other resolver is refused at validation."""

    callable: str = Field(min_length=1, max_length=500)
    method: str | None = None
    resolver: Resolver | None = None
    initialization: dict[str, Any] = Field(default_factory=dict)


class RetryPolicy(_Open):
    """How a step is retried: ``retryable`` and ``max_attempts`` decide whether, ``backoff`` (none, linear,
    exponential, fibonacci from ``backoff_base_ms``, capped at ``max_backoff_ms``, with jitter) decides when; a
    handler's ``retry_after`` overrides the delay.

    ``max_attempts`` admits 0 because the reference's boundary fixtures register such a step.
    """

    retryable: bool = True
    max_attempts: int = Field(default=3, ge=0, le=100)
    backoff: Backoff = "exponential"
    # tasker-core documents base >= 100 and cap >= 1000 but never enforces them, and its own fixtures use 50/200 ms:
    # any positive value is accepted, and `template_warnings` reports values below the documented range
    backoff_base_ms: int = Field(default=1000, ge=1, le=3_600_000)
    max_backoff_ms: int = Field(default=30_000, ge=1, le=3_600_000)


class EventDeclaration(_Open):
    name: str = Field(min_length=1)
    description: str | None = None
    condition: EventCondition = "success"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    delivery_mode: DeliveryMode = "durable"
    publisher: str | None = None


class BatchConfig(_Open):
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    parallelism: int = Field(default=10, ge=1, le=1000)
    cursor_field: str = "id"
    worker_template: str
    failure_strategy: FailureStrategy = "continue_on_failure"


class StepDefinition(_Open):
    # named_steps.name is varchar(128) and shared by all templates
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    type: StepType = Field(default="standard", validation_alias=AliasChoices("type", "step_type"))
    handler: HandlerDefinition
    dependencies: list[str] = Field(default_factory=list, validation_alias=AliasChoices("dependencies", "depends_on"))
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_seconds: int | None = Field(default=None, gt=0)
    system_dependency: str | None = None
    publishes_events: list[EventDeclaration] = Field(default_factory=list)
    batch_config: BatchConfig | None = None
    result_schema: dict[str, Any] | None = None
    composition: Any = None


class HandlerOverride(_Open):
    initialization: dict[str, Any] | None = None


class RetryOverride(_Open):
    """Fields left out (None) keep the step's value: environment retry overrides merge field by field."""

    retryable: bool | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    backoff_base_ms: int | None = None
    max_backoff_ms: int | None = None


class StepOverride(_Open):
    name: str
    handler: HandlerOverride | None = None
    timeout_seconds: int | None = None
    retry: RetryOverride | None = None

    def applies_to(self, step_name: str) -> bool:
        return self.name in (ALL_STEPS, step_name)


class EnvironmentOverrides(_Open):
    steps: list[StepOverride] = Field(default_factory=list)


class TaskTemplate(_Open):
    """A validated template; construct it with :func:`load_template_text` or ``TaskTemplate.model_validate``.

    Validation includes the graph checks (unknown dependency, duplicate name, cycle, decision without parent,
    batchable naming a missing worker template); pass ``context={"source": path}`` to name the file in errors.
    """

    # named_tasks: name varchar(64), version varchar(16); task_namespaces.name varchar(64)
    name: str = Field(min_length=1, max_length=64)
    namespace_name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=16)
    description: str | None = None
    metadata: TemplateMetadata | None = None
    system_dependencies: SystemDependencies | None = None
    domain_events: list[DomainEventSchema] = Field(default_factory=list)
    input_schema: dict[str, Any] | None = None
    steps: list[StepDefinition] = Field(default_factory=list)
    environments: dict[str, EnvironmentOverrides] = Field(default_factory=dict)
    lifecycle: Lifecycle | None = None
    identity_strategy: IdentityStrategy = "strict"

    _by_name: dict[str, StepDefinition] = PrivateAttr(default_factory=dict)
    _children: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """YAML reads ``version: 1.0`` as a float; a version is text."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check_graph(self, info: ValidationInfo) -> Self:
        source = str((info.context or {}).get("source", DEFAULT_SOURCE))
        _check_steps(self.steps, source)
        self._by_name = {step.name: step for step in self.steps}
        self._children = {step.name: [] for step in self.steps}
        for step in self.steps:
            for parent in step.dependencies:
                self._children[parent].append(step.name)
        return self

    @property
    def key(self) -> str:
        """``namespace/name:version``, the way people and messages name a template."""
        return f"{self.namespace_name}/{self.name}:{self.version}"

    def to_configuration(self) -> dict[str, Any]:
        """The JSON stored in ``named_tasks.configuration``; ``model_validate`` of it gives this template back."""
        return self.model_dump(mode="json", by_alias=True)

    def step(self, name: str) -> StepDefinition:
        try:
            return self._by_name[name]
        except KeyError:
            raise TemplateError(f"{self.key}: no step named {name!r}") from None

    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def parents(self, name: str) -> list[str]:
        return list(self.step(name).dependencies)

    def children(self, name: str) -> list[str]:
        """Steps that declare ``name`` as a dependency, in template order."""
        self.step(name)
        return list(self._children[name])

    def descendants(self, name: str) -> set[str]:
        """Every step reachable from ``name`` along dependency edges (``name`` itself excluded)."""
        found: set[str] = set()
        pending = self.children(name)
        while pending:
            current = pending.pop()
            if current not in found:
                found.add(current)
                pending.extend(self._children[current])
        return found

    def initial_step_names(self) -> list[str]:
        """Steps created with the task (reference §5.4), in template order.

        Without decision steps: everything but batch workers and deferred convergence steps (those appear when
        batches are created). With decision steps: everything that is not downstream of some decision step and
        is not a batch worker; the decision steps' descendants appear when a decision names them. In both cases a
        step downstream of a step that is not created yet waits for it (it is created together with it): created
        now, it would have lost that dependency and run at once.
        """
        decisions = [step.name for step in self.steps if step.type == "decision"]
        later = {step.name for step in self.steps if step.type == "batch_worker"}
        if decisions:
            later |= set().union(*(self.descendants(name) for name in decisions))
        else:
            later |= {step.name for step in self.steps if step.type == "deferred_convergence"}
        later |= set().union(set(), *(self.descendants(name) for name in list(later)))
        return [step.name for step in self.steps if step.name not in later]

    def initial_edges(self) -> list[tuple[str, str]]:
        """(parent, child) dependency edges between initial steps only: edges need both ends to exist."""
        initial = set(self.initial_step_names())
        return [
            (parent, step.name)
            for step in self.steps
            if step.name in initial
            for parent in step.dependencies
            if parent in initial
        ]

    def unknown_keys(self) -> list[str]:
        """Dotted paths of keys this model does not know (kept as-is); tooling may warn about them as typos."""
        return sorted(_extra_paths(self, ""))

    def for_environment(self, env: str) -> TaskTemplate:
        """This template with ``environments[env]`` step overrides applied; unknown environments change nothing.

        ``name: ALL`` applies to every step; overrides apply in their listed order, so a named override written
        after ``ALL`` wins. ``handler.initialization`` and ``retry`` are merged key by key.
        """
        overrides = self.environments.get(env)
        if overrides is None or not overrides.steps:
            return self
        data = self.to_configuration()
        data["steps"] = [_apply_overrides(step, overrides.steps) for step in self.steps]
        return _validate(data, f"{self.key} environment {env!r}")


def _apply_overrides(step: StepDefinition, overrides: Sequence[StepOverride]) -> dict[str, Any]:
    data = step.model_dump(mode="json", by_alias=True)
    for override in overrides:
        if not override.applies_to(step.name):
            continue
        if override.handler is not None and override.handler.initialization is not None:
            data["handler"]["initialization"] = {**data["handler"]["initialization"], **override.handler.initialization}
        if override.timeout_seconds is not None:
            data["timeout_seconds"] = override.timeout_seconds
        if override.retry is not None:
            data["retry"] = {**data["retry"], **override.retry.model_dump(mode="json", exclude_none=True)}
    return data


def _extra_paths(model: BaseModel, prefix: str) -> Iterator[str]:
    for key in model.model_extra or {}:
        yield f"{prefix}{key}"
    for field_name in type(model).model_fields:
        yield from _extra_paths_in(getattr(model, field_name), f"{prefix}{field_name}")


def _extra_paths_in(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield from _extra_paths(value, f"{path}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            label = getattr(item, "name", index)
            yield from _extra_paths_in(item, f"{path}[{label}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, BaseModel):
                yield from _extra_paths(item, f"{path}.{key}.")


# --- graph validation -------------------------------------------------------------------------------------------


def _check_steps(steps: Sequence[StepDefinition], source: str) -> None:
    """Structural checks pydantic cannot express; every problem found is reported, one per line."""
    problems: list[str] = []
    names: set[str] = set()
    for step in steps:
        if step.name in names:
            problems.append(f"{source}: step {step.name!r}: duplicate step name")
        names.add(step.name)
    for step in steps:
        problems += _step_link_problems(step, names, steps, source)
    if not problems:  # a cycle is only looked for among steps that all exist
        cycle = _find_cycle(steps)
        if cycle:
            problems.append(f"{source}: step {cycle[0]!r}: dependency cycle {' -> '.join(cycle)}")
    if problems:
        raise TemplateError("\n".join(problems))


def _step_link_problems(
    step: StepDefinition, names: set[str], steps: Sequence[StepDefinition], source: str
) -> list[str]:
    where = f"{source}: step {step.name!r}"
    problems = [f"{where}: unknown dependency {parent!r}" for parent in step.dependencies if parent not in names]
    if len(set(step.dependencies)) != len(step.dependencies):
        problems.append(f"{where}: dependencies: a dependency is listed twice")
    if step.type == "decision" and not step.dependencies:
        problems.append(f"{where}: a decision step needs at least one dependency")
    worker = step.handler.initialization.get("worker_template_name")
    if step.type == "batchable" and worker is not None:
        types = {other.name: other.type for other in steps}
        if worker not in types:
            problems.append(f"{where}: handler.initialization.worker_template_name: no step named {worker!r}")
        elif types[worker] != "batch_worker":
            problems.append(
                f"{where}: handler.initialization.worker_template_name: step {worker!r} is not a batch_worker"
            )
    return problems


def _find_cycle(steps: Sequence[StepDefinition]) -> list[str]:
    """A dependency cycle as a closed path (``a -> b -> a`` is ``[a, b, a]``, parent before child), or []."""
    children: dict[str, list[str]] = {step.name: [] for step in steps}
    for step in steps:
        for parent in step.dependencies:
            children[parent].append(step.name)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in children:
        if root in state:
            continue
        path = [root]
        iters = [iter(children[root])]
        state[root] = 1
        while iters:
            child = next(iters[-1], None)
            if child is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif child not in state:
                state[child] = 1
                path.append(child)
                iters.append(iter(children[child]))
    return []


# --- loading ----------------------------------------------------------------------------------------------------


def _validate(data: Any, source: str) -> TaskTemplate:
    if not isinstance(data, Mapping):
        raise TemplateError(f"{source}: a template must be a mapping of fields, got {type(data).__name__}")
    try:
        return TaskTemplate.model_validate(data, context={"source": source})
    except ValidationError as exc:
        raise TemplateError(_describe_errors(exc, data, source)) from None


def _describe_errors(exc: ValidationError, data: Mapping[str, Any], source: str) -> str:
    """One line per pydantic error: file, step name (not its index) and the field's dotted path."""
    return "\n".join(_describe_error(error, data, source) for error in exc.errors())


def _describe_error(error: Any, data: Mapping[str, Any], source: str) -> str:
    loc: tuple[Any, ...] = tuple(error["loc"])
    where = source
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        where = f"{source}: step {_step_label(data, loc[1])}"
        loc = loc[2:]
    field = ".".join(str(part) for part in loc) or "template"
    if error["type"] == "literal_error" and loc and loc[-1] in ("type", "step_type"):
        return f"{where}: {field}: unknown step type {error['input']!r} ({error['ctx']['expected']})"
    message = f"{where}: {field}: {error['msg']}"
    if error["type"] != "missing":
        message += f" (got {error['input']!r})"
    return message


def _step_label(data: Mapping[str, Any], index: int) -> str:
    steps = data.get("steps")
    if isinstance(steps, list) and index < len(steps) and isinstance(steps[index], Mapping):
        name = steps[index].get("name")
        if isinstance(name, str):
            return repr(name)
    return f"#{index + 1}"


def _plain(value: Any) -> Any:
    """YAML yields dates and non-string keys that JSON cannot hold; make them text so the template round-trips."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


# Loading is bounded because template text comes from API callers: without limits a 400-byte alias bomb expands to
# billions of nodes (minutes of CPU, gigabytes of memory) and 1000 ``[`` exhaust Python's recursion limit.
MAX_TEMPLATE_CHARS = 1_000_000
MAX_TEMPLATE_DEPTH = 100
MAX_TEMPLATE_ALIAS_EXPANSION = 100_000


class _Position(Protocol):
    """A PyYAML mark (pure-Python or libyaml): where in the text a node or an event starts."""

    line: int
    column: int


class _Refused(Exception):
    """A limit was passed while reading YAML; :func:`load_template_text` names the source and the position."""

    def __init__(self, problem: str, mark: _Position | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


def _too_deep(mark: _Position | None) -> _Refused:
    return _Refused(f"nesting deeper than {MAX_TEMPLATE_DEPTH} levels", mark)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting while it composes: the composer recurses once per nesting level, so the depth
    is refused here, before Python's recursion limit; the node count sets the budget aliases may add."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.node_count = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_TEMPLATE_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
                raise _too_deep(event.start_mark)
            self.node_count += 1
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Expansion:
    """Measures the composed graph as the tree it would construct, without building it.

    Aliases make the graph a DAG whose expanded size can be exponential in the text; each node is measured once
    (memoised), so the walk is linear in the composed nodes and stops at the first limit passed: expanded nodes
    beyond the document's own plus :data:`MAX_TEMPLATE_ALIAS_EXPANSION`, expanded depth beyond
    :data:`MAX_TEMPLATE_DEPTH`, or an alias inside the node it names (a recursive structure).
    """

    def __init__(self, own_nodes: int) -> None:
        self.budget = own_nodes + MAX_TEMPLATE_ALIAS_EXPANSION
        self.measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
        self.open: set[int] = set()

    def measure(self, node: yaml.Node, depth: int = 1) -> tuple[int, int]:
        if depth > MAX_TEMPLATE_DEPTH:
            raise _too_deep(node.start_mark)
        key = id(node)
        known = self.measured.get(key)
        if known is not None:
            if depth - 1 + known[1] > MAX_TEMPLATE_DEPTH:
                raise _too_deep(node.start_mark)
            return known
        if key in self.open:
            raise _Refused("recursive alias: an alias refers to a node that contains it", node.start_mark)
        self.open.add(key)
        size, height = 1, 1
        for child in _child_nodes(node):
            child_size, child_height = self.measure(child, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
            if size > self.budget:
                raise _Refused(
                    f"aliases expand the document by more than {MAX_TEMPLATE_ALIAS_EXPANSION} nodes (an alias bomb?)",
                    node.start_mark,
                )
        self.open.discard(key)
        self.measured[key] = (size, height)
        return size, height


def _child_nodes(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _parse_bounded(text: str) -> Any:
    """``yaml.safe_load`` with the limits above; raises :class:`_Refused` or :class:`yaml.YAMLError`."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise _Refused(f"the text is {len(text)} characters, over the limit of {MAX_TEMPLATE_CHARS}", None)
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _Expansion(loader.node_count).measure(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _position(mark: _Position | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def load_template_text(text: str, source: str = DEFAULT_SOURCE) -> TaskTemplate:
    """Parse and validate one YAML (or JSON) template; ``source`` names it in error messages.

    Texts over the size, nesting or alias-expansion limits raise :class:`~tasker.errors.TemplateLimitError`.
    """
    try:
        data = _parse_bounded(text)
    except _Refused as exc:
        raise TemplateLimitError(f"{source}: {_position(exc.mark)}template refused: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        where = _position(exc.problem_mark or exc.context_mark)
        raise TemplateError(f"{source}: {where}invalid YAML: {exc.problem or exc.context or 'cannot parse'}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{source}: invalid YAML: {exc}") from None
    return _validate(_plain(data), source)


def load_template_file(path: str | Path) -> TaskTemplate:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return load_template_text(text, str(path))


def template_files(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else every ``*.yaml``/``*.yml`` below it, sorted for a stable order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TemplateError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*") if p.suffix in TEMPLATE_SUFFIXES and p.is_file())


@dataclass(frozen=True)
class TemplateTree:
    """The templates of a file or directory tree: those that loaded, and each refused file with why."""

    loaded: list[tuple[Path, TaskTemplate]]
    refused: list[tuple[Path, str]]


def load_template_tree(path: str | Path) -> TemplateTree:
    """Load every template file below ``path``, keeping going past bad ones; a second definition of the same
    namespace/name/version is refused (the first one, in path order, is kept)."""
    loaded: list[tuple[Path, TaskTemplate]] = []
    refused: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    for file in template_files(path):
        try:
            template = load_template_file(file)
        except TemplateError as exc:
            refused.append((file, exc.message))
            continue
        if template.key in seen:
            refused.append((file, f"{file}: template {template.key} is also defined in {seen[template.key]}"))
            continue
        seen[template.key] = file
        loaded.append((file, template))
    return TemplateTree(loaded, refused)


def load_template_paths(path: str | Path) -> list[tuple[Path, TaskTemplate]]:
    """Load a file or a directory tree, all or nothing; every file is checked and all problems are reported
    together."""
    tree = load_template_tree(path)
    if tree.refused:
        raise TemplateError("\n".join(message for _, message in tree.refused))
    return tree.loaded


DOCUMENTED_MIN_BACKOFF_BASE_MS = 100
DOCUMENTED_MIN_MAX_BACKOFF_MS = 1000
# models whose unknown keys are free-form by design (descriptive metadata), not mistakes worth a warning
_FREE_FORM = (TemplateMetadata, DomainEventSchema)


def template_warnings(template: TaskTemplate) -> list[str]:
    """What a valid template may not do as its author meant: keys Tasker ignores (e.g. ``retry.limit``, which is
    not ``max_attempts``) and retry values below tasker-core's documented range (accepted, as tasker-core does)."""
    found = [f"{template.key}: {where}: key {key!r} is not used and is ignored" for where, key in _ignored(template)]
    for step in template.steps:
        retry = step.retry
        if retry.backoff_base_ms < DOCUMENTED_MIN_BACKOFF_BASE_MS:
            found.append(
                f"{template.key}: step {step.name!r}: retry.backoff_base_ms {retry.backoff_base_ms} is below the "
                f"documented minimum of {DOCUMENTED_MIN_BACKOFF_BASE_MS} (accepted)"
            )
        if retry.max_backoff_ms < DOCUMENTED_MIN_MAX_BACKOFF_MS:
            found.append(
                f"{template.key}: step {step.name!r}: retry.max_backoff_ms {retry.max_backoff_ms} is below the "
                f"documented minimum of {DOCUMENTED_MIN_MAX_BACKOFF_MS} (accepted)"
            )
    return found


def _ignored(model: BaseModel, where: str = "") -> list[tuple[str, str]]:
    """(location, key) of every unknown key in the template's models, depth first; locations read like
    ``step 'charge': retry``."""
    if isinstance(model, _FREE_FORM):
        return []
    found = [(where or "template", key) for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, BaseModel):
                continue
            if isinstance(item, StepDefinition):
                found += _ignored(item, f"step {item.name!r}")
            else:
                found += _ignored(item, _child_location(where, name))
    return found


def _child_location(where: str, field: str) -> str:
    if not where:
        return field
    return f"{where}: {field}" if ":" not in where else f"{where}.{field}"
