"""The package's folders are its architecture: each layer imports only the layers below it (README, Development).

model → store → engine, messaging → worker → service → faces (api, cli, client); `config`, `errors` and
`telemetry` are shared by all. The worker never imports the engine (they meet in tables and queues), the client
never imports the server side, and the model stays free of I/O libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tasker"
SHARED = {"config", "errors", "telemetry"}
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "errors": set(),
    "telemetry": set(),
    "model": set(),
    "store": {"model"},
    "messaging": {"model", "store"},
    "engine": {"model", "store", "messaging"},
    "worker": {"model", "store", "messaging", "engine"},  # the fast path applies results with the engine's code
    "service": {"model", "store", "messaging", "engine", "worker"},
    "api": {"model", "store", "messaging", "engine", "service"},
    "cli": {"model", "store", "messaging", "engine", "worker", "service", "api", "client"},
    "client": {"model"},
}
IO_LIBRARIES = {"psycopg", "psycopg_pool", "asyncio", "httpx", "fastapi"}


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    layer = _layer(path)
    allowed = ALLOWED[layer]
    for module in _imports(path):
        parts = module.split(".")
        if parts[0] != "tasker" or len(parts) == 1:
            continue
        target = parts[1]
        if target in SHARED or target == layer:
            continue
        assert target in allowed, f"{path.relative_to(PACKAGE)} ({layer}) imports {module}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "model").rglob("*.py")), ids=lambda p: p.name)
def test_the_model_does_no_io(path: Path) -> None:
    assert not {m.split(".")[0] for m in _imports(path)} & IO_LIBRARIES
