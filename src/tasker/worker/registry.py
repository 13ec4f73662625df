"""Handlers by name: an explicit registry first, then import by dotted path (``package.module.Class``)."""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

from tasker.worker.handler import FunctionHandler, StepHandler


class HandlerNotFoundError(LookupError):
    """No handler is registered or importable under that name."""


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, StepHandler] = {}
        self._lock = threading.Lock()

    def register(self, name: str, handler: StepHandler | type[StepHandler]) -> None:
        instance = handler() if isinstance(handler, type) else handler
        with self._lock:
            self._handlers[name] = instance

    def is_registered(self, name: str) -> bool:
        return name in self._handlers

    def list_handlers(self) -> list[str]:
        return sorted(self._handlers)

    def resolve(self, name: str) -> StepHandler:
        """The handler for ``name``; imported (and cached) when it is a dotted path."""
        handler = self._handlers.get(name)
        if handler is not None:
            return handler
        handler = _import_handler(name)
        self.register(name, handler)
        return handler


def _import_handler(path: str) -> StepHandler:
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise HandlerNotFoundError(f"handler {path!r} is not registered and is not a dotted path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerNotFoundError(f"handler {path!r}: cannot import module {module_name!r}: {exc}") from exc
    target: Any = getattr(module, attribute, None)
    if target is None:
        raise HandlerNotFoundError(f"handler {path!r}: module {module_name!r} has no attribute {attribute!r}")
    if inspect.isclass(target) and issubclass(target, StepHandler):
        return target()
    if inspect.isclass(target) and hasattr(target, "call"):
        return _Adapter(target())
    if callable(target):
        return FunctionHandler(target, path)
    raise HandlerNotFoundError(f"handler {path!r} is neither a StepHandler class nor a function")


class _Adapter(StepHandler):
    """A class with a ``call`` method that does not derive from StepHandler (duck typing, as tasker-core)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def call(self, context: Any) -> Any:
        return self.inner.call(context)


default_registry = HandlerRegistry()
