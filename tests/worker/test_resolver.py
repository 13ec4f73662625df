"""``handler.resolver`` is honoured as in tasker-core: explicit_mapping only looks in the registry, class_lookup
only imports the dotted path."""

from __future__ import annotations

from typing import Any

import pytest

from tasker.worker.handler import StepContext, StepHandler
from tasker.worker.registry import HandlerNotFoundError, HandlerRegistry
from tests.handlers.scenarios import Succeed


class Registered(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"from": "registry"}


def test_explicit_mapping_looks_only_in_the_registry() -> None:
    registry = HandlerRegistry()
    registry.register("billing.charge", Registered)
    assert isinstance(registry.resolve("billing.charge", resolver="explicit_mapping"), Registered)
    with pytest.raises(HandlerNotFoundError, match="explicit_mapping"):
        registry.resolve("tests.handlers.scenarios.Succeed", resolver="explicit_mapping")


def test_class_lookup_imports_even_when_a_registered_name_matches() -> None:
    registry = HandlerRegistry()
    registry.register("tests.handlers.scenarios.Succeed", Registered)
    assert isinstance(registry.resolve("tests.handlers.scenarios.Succeed"), Registered)
    assert isinstance(registry.resolve("tests.handlers.scenarios.Succeed", resolver="class_lookup"), Succeed)
    with pytest.raises(HandlerNotFoundError, match="unknown resolver"):
        registry.resolve("tests.handlers.scenarios.Succeed", resolver="magic")
