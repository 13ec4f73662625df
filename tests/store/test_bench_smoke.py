"""The readiness benchmark still runs: bench/readiness.py at a tiny size against the test database (no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent.parent


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_readiness", ROOT / "bench" / "readiness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def test_readiness_bench_runs_at_a_tiny_size(db_url: str) -> None:
    bench = _load_bench()
    results = bench.main(["--sizes", "50,100", "--samples", "10"], database_url=db_url)
    assert {r.size for r in results} == {50, 100}
    assert {r.query for r in results} == set(bench.QUERIES)
    assert all(r.client_p50_ms > 0 and r.server_exec_p50_ms > 0 for r in results)
