"""Every command the Typer app registers has a test that runs it for real; a new command without one fails here.

Tests in tests/cli declare what they run with ``@covers(...)`` (and fail unless they ran it, see conftest.py).
Commands that start long-running services are run as real processes by end-to-end tests elsewhere; those are
listed in ELSEWHERE and checked to exist and to start that command.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from tests.cli import coverage

HERE = Path(__file__).resolve().parent

# command -> (test module, test function) that starts it as a real `tasker` process and checks it works
ELSEWHERE = {
    "orchestrator": ("tests.e2e.test_processes", "test_two_orchestrators_two_workers_run_200_tasks"),
    "worker": ("tests.e2e.test_processes", "test_two_orchestrators_two_workers_run_200_tasks"),
    "serve": ("tests.e2e.test_processes", "test_serve_runs_a_workflow_through_its_api_and_stops_cleanly"),
    "demo": ("tests.e2e.test_demo", "test_demo_runs_the_examples"),
}


def declared_in_tests() -> dict[str, set[str]]:
    """command -> the tests in tests/cli that declare (with @covers) that they run it."""
    found: dict[str, set[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        module = importlib.import_module(f"tests.cli.{path.stem}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_"):
                continue
            for mark in getattr(function, "pytestmark", []):
                if mark.name == coverage.COVERS:
                    for command in mark.args:
                        found.setdefault(command, set()).add(f"{path.name}::{name}")
    return found


def test_every_registered_command_has_a_test() -> None:
    registered = coverage.command_paths()
    assert {"task create", "template list", "db migrate", "worker", "api"} <= registered, registered
    covered = set(declared_in_tests()) | set(ELSEWHERE)
    untested = sorted(registered - covered)
    assert not untested, f"commands without a test that runs them: {untested} (add one and mark it @covers(...))"
    unknown = sorted(covered - registered)
    assert not unknown, f"tests claim to cover commands that do not exist: {unknown}"


def test_the_tests_named_for_service_commands_exist_and_start_them() -> None:
    for command, (module_name, function_name) in ELSEWHERE.items():
        function = getattr(importlib.import_module(module_name), function_name, None)
        assert function is not None, f"{module_name}.{function_name} (the test of `tasker {command}`) is gone"
        assert f'"{command}"' in inspect.getsource(function), f"{function_name} does not start `tasker {command}`"


def test_command_paths_resolve_options_and_groups() -> None:
    assert coverage.path_of(["task", "--api-url", "http://x", "wait", "u"]) == "task wait"
    assert coverage.path_of(["worker", "-n", "a"]) == "worker"
    assert coverage.path_of(["task", "--help"]) is None
    assert coverage.path_of(["--version"]) is None
