"""CLI tests: each declares the commands it covers, and fails unless it really ran them (tests/cli/coverage.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli import coverage


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "covers(*commands): the tasker commands this test runs for real")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def ran_what_it_covers(request: pytest.FixtureRequest) -> Iterator[None]:
    coverage.ran.clear()
    yield
    if request.node.stash.get(CALL_FAILED, True):
        return  # the test itself failed (or never ran): that is the failure to report
    declared = {path for mark in request.node.iter_markers(coverage.COVERS) for path in mark.args}
    missing = declared - coverage.ran
    assert not missing, f"the test declares it covers {sorted(missing)} but did not run them"
