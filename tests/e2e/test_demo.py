"""The README's first command: `tasker demo` runs the example workflows end to end and reports them."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.e2e.processes import ROOT


def test_demo_runs_the_examples(db_url: str) -> None:
    env = {**os.environ, "TASKER_DATABASE_URL": db_url, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "tasker.cli.main", "demo", "--orders", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "registered 5 templates" in out
    assert "ecommerce/order_fulfillment complete" in out
    assert "payments/process_refund blocked_by_failures" in out
    assert "charge_payment complete attempts 2" in out  # the flaky gateway retried
    assert "analytics/daily_report complete" in out
    assert "finance_signoff complete" in out and "auto_approve_spend complete" in out  # decisions' branches
    assert "import_rows_004 complete" in out and "import_rows_000 complete" in out  # batch workers, empty batch
