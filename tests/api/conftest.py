from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.server import register_templates, serving


@pytest.fixture
def api_url(db_url: str) -> Iterator[str]:
    """A running API (auth off) on a fresh database holding the fixture templates."""
    register_templates(db_url)
    with serving(db_url) as base:
        yield base


@pytest.fixture
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client
