"""Property test over real HTTP: arbitrary bodies, paths and query values never give a 5xx, always the error
shape, and nothing is written unless the task is created."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_routes import counts

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(
    ["name", "namespace", "version", "context", "priority", "tags", "correlation_id", "initiator", "other"]
)
bodies = st.dictionaries(fields, json_values, max_size=6) | json_values
segments = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40)


def check_error_shape(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


def test_fuzzed_requests(http: httpx.Client, db_url: str) -> None:
    before = counts(db_url)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, segment=segments, page=st.integers(-5, 200), status=st.text(max_size=30))
    def run(body: Any, segment: str, page: int, status: str) -> None:
        created = http.post("/v1/tasks", json=body)
        check_error_shape(created)
        assert created.status_code != 201, "no fuzzed body names a registered template with a valid context"
        check_error_shape(http.get(f"/v1/tasks/{segment}"))
        check_error_shape(http.get(f"/v1/templates/{segment}/{segment}/1.0.0"))
        check_error_shape(http.get("/v1/tasks", params={"page": page, "status": status}))
        check_error_shape(http.patch(f"/v1/tasks/{segment}/workflow_steps/{segment}", json=body))

    run()
    assert counts(db_url) == before
