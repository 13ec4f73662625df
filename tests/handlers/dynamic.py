"""Handlers of the dynamic-workflow fixtures (tests/fixtures/templates/dynamic): diamond → decision → batch,
nested decisions, and batch failure strategies."""

from __future__ import annotations

from typing import Any

from tasker import PermanentError, StepContext, StepHandler


class Echo(StepHandler):
    """Records its own name and the names of its ancestors that exist."""

    def call(self, context: StepContext) -> Any:
        return {"step": context.step_name, "ancestors": sorted(context.dependency_results)}


class ChooseFromContext(StepHandler):
    """A decision that creates ``context[<step name>]`` (a list of step names; missing or empty: no branches)."""

    def call(self, context: StepContext) -> Any:
        chosen = context.get_input(context.step_name) or []
        if not chosen:
            return self.decision_no_branches("nothing chosen")
        return self.decision_success(chosen, {"chosen_by": context.step_name})


# --- diamond, then decision, then batch ---------------------------------------------------------------------------


class DiamondStart(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"numbers": list(context.get_input("numbers"))}


class SplitNumbers(StepHandler):
    def call(self, context: StepContext) -> Any:
        parity = context.get_config("parity")
        numbers = context.get_dependency_result("ddb_diamond_start")["numbers"]
        return {"values": [n for n in numbers if n % 2 == (0 if parity == "even" else 1)]}


class DiamondEnd(StepHandler):
    def call(self, context: StepContext) -> Any:
        evens = context.get_dependency_result("ddb_branch_evens")["values"]
        odds = context.get_dependency_result("ddb_branch_odds")["values"]
        return {"evens": len(evens), "odds": len(odds)}


class ParityDecision(StepHandler):
    def call(self, context: StepContext) -> Any:
        counts = context.get_dependency_result("ddb_diamond_end")
        parity = "even" if counts["evens"] >= counts["odds"] else "odd"
        return self.decision_success([f"ddb_{parity}_batch_analyzer"], {"parity": parity})


class ParityAnalyzer(StepHandler):
    def call(self, context: StepContext) -> Any:
        values = context.get_dependency_result(context.get_config("source"))["values"]
        ranges = self.create_cursor_ranges(len(values), context.get_config("batch_size"))
        return self.batch_analyzer_success(context.get_config("worker_template_name"), ranges, len(values))


class SumSlice(StepHandler):
    def call(self, context: StepContext) -> Any:
        batch = self.batch_worker_inputs(context)
        values = context.get_dependency_result(context.get_config("source"))["values"]
        part = values[batch.start_cursor : batch.end_cursor]
        return self.batch_worker_success(len(part), batch_id=batch.batch_id, sum=sum(part))


class SumWorkers(StepHandler):
    def call(self, context: StepContext) -> Any:
        workers = self.aggregate_worker_results(context, context.get_config("worker_template_name"))
        return {
            "workers": workers.worker_count,
            "items": workers.items_processed,
            "sum": sum(r["sum"] for r in workers.results.values() if isinstance(r, dict)),
        }


class Finalize(StepHandler):
    def call(self, context: StepContext) -> Any:
        found = {
            name: context.get_dependency_result(name)
            for name in ("ddb_even_aggregate", "ddb_odd_aggregate")
            if name in context.dependency_results
        }
        return {"aggregates": sorted(found), "sum": sum(r["sum"] for r in found.values())}


# --- failure strategies -------------------------------------------------------------------------------------------


class CountAnalyzer(StepHandler):
    def call(self, context: StepContext) -> Any:
        total = int(context.get_input("total_items"))
        ranges = self.create_cursor_ranges(total, int(context.get_input("batch_size")))
        return self.batch_analyzer_success(context.get_config("worker_template_name"), ranges, total)


class MaybeFailingWorker(StepHandler):
    """Fails for good when its batch id is listed in ``context.fail_batches``."""

    def call(self, context: StepContext) -> Any:
        batch = self.batch_worker_inputs(context)
        if batch.batch_id in (context.get_input("fail_batches") or []):
            raise PermanentError(f"batch {batch.batch_id} is broken")
        return self.batch_worker_success(batch.end_cursor - batch.start_cursor, batch_id=batch.batch_id)


class CountWorkers(StepHandler):
    def call(self, context: StepContext) -> Any:
        workers = self.aggregate_worker_results(context, context.get_config("worker_template_name"))
        return {
            "workers": workers.worker_count,
            "items": workers.items_processed,
            "failed_workers": workers.failed_workers,
        }


class NoBatchesAnonymous(StepHandler):
    """A batchable step in tasker-core's style that has nothing to split and names no worker."""

    def call(self, context: StepContext) -> Any:
        return self.no_batches_outcome("nothing to do")
