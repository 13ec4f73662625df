"""Handlers by name: an explicit registry first, then import by dotted path (``package.module.Class``).

Importing by dotted path lets a template name any importable callable. A worker given an allow-list of module
prefixes (``TASKER_HANDLER_ALLOWED_MODULES``) imports only from those, so whoever can register a template cannot
make it run ``os.system``; handlers registered explicitly in code (``register``, ``@step_handler``) are trusted.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Sequence
from typing import Any

from tasker.worker.handler import StepHandler, function_handler

RESOLVERS = ("explicit_mapping", "class_lookup", "class_constant")


class HandlerNotFoundError(LookupError):
    """No handler is registered or importable under that name."""


class HandlerNotAllowedError(LookupError):
    """The handler would be imported from a module outside the worker's allow-list."""


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, StepHandler] = {}
        self._imported: dict[str, StepHandler] = {}
        self._lock = threading.Lock()

    def register(self, name: str, handler: StepHandler | type[StepHandler]) -> None:
        instance = handler() if isinstance(handler, type) else handler
        with self._lock:
            self._handlers[name] = instance

    def is_registered(self, name: str) -> bool:
        return name in self._handlers

    def list_handlers(self) -> list[str]:
        return sorted(self._handlers)

    def resolve(
        self, name: str, *, allowed_modules: Sequence[str] | None = None, resolver: str | None = None
    ) -> StepHandler:
        """The handler for ``name``; imported (and cached) when it is a dotted path.

        With ``allowed_modules`` (module prefixes: ``myapp.handlers`` covers ``myapp.handlers.billing``) a dotted
        path outside them is refused before anything is imported. ``resolver`` is the template's
        ``handler.resolver`` (tasker-core's names): ``explicit_mapping`` looks only in this registry,
        ``class_lookup`` / ``class_constant`` only import the dotted path; without it, the registry, then the import.
        """
        if resolver not in (None, *RESOLVERS):
            raise HandlerNotFoundError(f"handler {name!r}: unknown resolver {resolver!r} (use {', '.join(RESOLVERS)})")
        handler = self._handlers.get(name) if resolver in (None, "explicit_mapping") else None
        if handler is not None:
            return handler
        if resolver == "explicit_mapping":
            raise HandlerNotFoundError(f"handler {name!r}: resolver explicit_mapping, and no handler is registered so")
        if allowed_modules is not None:
            check_allowed(name, allowed_modules)
        handler = self._imported.get(name)
        if handler is None:
            handler = _import_handler(name)
            with self._lock:
                self._imported[name] = handler
        return handler


def check_allowed(path: str, allowed_modules: Sequence[str]) -> None:
    """Raise :class:`HandlerNotAllowedError` unless ``path``'s module is one of ``allowed_modules`` or below one."""
    module_name = path.rpartition(".")[0]
    for prefix in allowed_modules:
        allowed = prefix.strip().rstrip(".")
        if allowed and (module_name == allowed or module_name.startswith(allowed + ".")):
            return
    listed = ", ".join(allowed_modules) or "(none)"
    raise HandlerNotAllowedError(
        f"handler {path!r} is not registered and its module {module_name or path!r} is outside the allowed handler "
        f"modules ({listed}; setting handler_allowed_modules, TASKER_HANDLER_ALLOWED_MODULES): not imported"
    )


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
        inner: Any = target()
        return _AsyncAdapter(inner) if inspect.iscoroutinefunction(inner.call) else _Adapter(inner)
    if callable(target):
        return function_handler(target, path)
    raise HandlerNotFoundError(f"handler {path!r} is neither a StepHandler class nor a function")


class _Adapter(StepHandler):
    """A class with a ``call`` method that does not derive from StepHandler (duck typing, as tasker-core)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def call(self, context: Any) -> Any:
        return self.inner.call(context)


class _AsyncAdapter(_Adapter):
    """As :class:`_Adapter` for an ``async def call``: runs on the loop, and is cancellable."""

    async def call(self, context: Any) -> Any:
        return await self.inner.call(context)


default_registry = HandlerRegistry()
