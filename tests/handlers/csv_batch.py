"""CSV batch (reference §14.2): an analyzer splits a product CSV into row ranges, one worker per range sums its
rows, and a convergence step adds up every worker's figures. Columns: ``id,name,quantity,price``."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

from tasker import StepContext, StepHandler


def _rows(path: str, start: int, end: int) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(itertools.islice(csv.DictReader(handle), start, end))


class AnalyzeCsv(StepHandler):
    def call(self, context: StepContext) -> Any:
        path = context.get_input("csv_file_path")
        with Path(path).open(newline="") as handle:
            total = sum(1 for _ in csv.DictReader(handle))
        worker = context.get_config("worker_template_name")
        if total == 0:
            return self.no_batches_outcome("empty file", worker_template_name=worker, total_items=0)
        ranges = self.create_cursor_ranges(total, context.get_config("batch_size"))
        return self.batch_analyzer_success(worker, ranges, total, csv_file_path=path)


class ProcessCsvBatch(StepHandler):
    def call(self, context: StepContext) -> Any:
        batch = self.batch_worker_inputs(context)
        rows = _rows(context.get_input("csv_file_path"), batch.start_cursor, batch.end_cursor)
        quantity = sum(int(r["quantity"]) for r in rows)
        value = round(sum(int(r["quantity"]) * float(r["price"]) for r in rows), 2)
        return self.batch_worker_success(
            len(rows),
            batch_id=batch.batch_id,
            last_cursor=batch.end_cursor,
            total_quantity=quantity,
            inventory_value=value,
            first_id=rows[0]["id"] if rows else None,
        )


class AggregateCsvResults(StepHandler):
    def call(self, context: StepContext) -> Any:
        workers = self.aggregate_worker_results(context, "process_csv_batch")
        results = [r for r in workers.results.values() if isinstance(r, dict)]
        return {
            "worker_count": workers.worker_count,
            "no_op": workers.no_op,
            "total_rows": workers.items_processed,
            "total_quantity": sum(r["total_quantity"] for r in results),
            "inventory_value": round(sum(r["inventory_value"] for r in results), 2),
            "failed_workers": workers.failed_workers,
        }
