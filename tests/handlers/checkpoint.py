"""A batch worker that checkpoints its progress and, on its first attempt, fails (or hangs, to be killed) part way.

Context: ``total_items`` (100), ``items_per_checkpoint`` (25), ``fail_at`` (item index, e.g. 60), ``mode``
(``fail``: a retryable error at ``fail_at``; ``hang``: sleep there until killed), ``item_sleep`` seconds per item.
The result says where the attempt started, so a test can see the retry resume from the checkpoint.
"""

from __future__ import annotations

import time
from typing import Any

from tasker import RetryableError, StepContext, StepHandler


class AnalyzeItems(StepHandler):
    def call(self, context: StepContext) -> Any:
        total = int(context.get_input("total_items", 100))
        ranges = self.create_cursor_ranges(total, int(context.get_input("batch_size", total)))
        return self.batch_analyzer_success(context.get_config("worker_template_name"), ranges, total)


class CheckpointWorker(StepHandler):
    def call(self, context: StepContext) -> Any:
        batch = self.batch_worker_inputs(context)
        every = int(context.get_input("items_per_checkpoint", 25))
        fail_at = context.get_input("fail_at")
        mode = context.get_input("mode", "fail")
        pause = float(context.get_input("item_sleep", 0))
        start = context.checkpoint_cursor if context.has_checkpoint() else batch.start_cursor
        carried = context.accumulated_results or {"sum": 0, "seen": []}
        total, seen = int(carried["sum"]), list(carried["seen"])
        done = context.checkpoint_items_processed
        for index in range(start, batch.end_cursor):
            if context.attempt == 1 and fail_at is not None and index == int(fail_at):
                if mode == "hang":
                    time.sleep(120)
                raise RetryableError(f"failed at item {index}")
            if pause:
                time.sleep(pause)
            total += index
            seen.append(index)
            done += 1
            if (index + 1 - batch.start_cursor) % every == 0:
                context.checkpoint_yield(index + 1, done, {"sum": total, "seen": seen})
        return self.batch_worker_success(
            done,
            batch_id=batch.batch_id,
            last_cursor=batch.end_cursor,
            resumed_from=start,
            attempt=context.attempt,
            sum=total,
            distinct_items=len(set(seen)),
        )


class AsyncCheckpointWorker(StepHandler):
    """The same contract from an ``async`` handler: the checkpoint yield is awaited."""

    async def call(self, context: StepContext) -> Any:
        batch = self.batch_worker_inputs(context)
        start = context.checkpoint_cursor if context.has_checkpoint() else batch.start_cursor
        total = int((context.accumulated_results or {}).get("sum", 0))
        done = context.checkpoint_items_processed
        for index in range(start, batch.end_cursor):
            if context.attempt == 1 and index == int(context.get_input("fail_at", -1)):
                raise RetryableError(f"failed at item {index}")
            total += index
            done += 1
            if (index + 1) % int(context.get_input("items_per_checkpoint", 25)) == 0:
                await context.checkpoint_yield(index + 1, done, {"sum": total})
        return self.batch_worker_success(done, resumed_from=start, attempt=context.attempt, sum=total)


class Summarize(StepHandler):
    def call(self, context: StepContext) -> Any:
        workers = self.aggregate_worker_results(context, context.get_config("worker_template_name"))
        return {"items_processed": workers.items_processed, "workers": workers.worker_count}


class YieldingCounter(StepHandler):
    """tasker-core style: returns a checkpoint yield every 10 items and is called again from the cursor."""

    def call(self, context: StepContext) -> Any:
        start = int(context.checkpoint_cursor or 0)
        total = int((context.checkpoint or {}).get("accumulated_results") or 0)
        end = min(start + 10, 30)
        total += sum(range(start, end))
        if end < 30:
            return self.checkpoint_yield(end, end, total)
        return {"sum": total, "resumed_from": start, "attempt": context.attempt}
