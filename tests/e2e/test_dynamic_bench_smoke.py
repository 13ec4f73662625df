"""bench/batch.py still runs: tiny sizes on the test database, real orchestrator and worker processes (no timing)."""

from __future__ import annotations

from bench import batch


def test_batch_bench_runs_at_a_tiny_size(db_url: str) -> None:
    report = batch.main(["--rows", "0,450", "--batch-size", "200", "--repeats", "1"], database_url=db_url)
    assert [(r["rows"], r["workers"]) for r in report] == [(0, 0), (450, 3)]
    assert all(r["rows_per_s"] >= 0 for r in report)
