"""Handlers of the example workflows (`tasker demo` runs them). Plain classes: `call(context)` returns a dict."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tasker import PermanentError, RetryableError, StepContext, StepHandler


class ValidateOrder(StepHandler):
    def call(self, context: StepContext) -> Any:
        items = context.get_input("items")
        total = round(sum(item["quantity"] * item["price"] for item in items), 2)
        return {"order_id": context.get_input("order_id"), "total": total, "lines": len(items)}


class ReserveInventory(StepHandler):
    async def call(self, context: StepContext) -> Any:  # async handlers run on the worker's event loop
        await asyncio.sleep(0.01)
        return {"reserved": [item["sku"] for item in context.get_input("items")]}


class ScreenFraud(StepHandler):
    def call(self, context: StepContext) -> Any:
        total = context.get_dependency_field("validate_order", "total")
        return {"score": round(random.random() * 0.2, 3), "manual_review": total > context.get_config("review_above")}


class ChargePayment(StepHandler):
    def call(self, context: StepContext) -> Any:
        if context.get_input("flaky_gateway") and context.attempt == 1:
            raise RetryableError("payment gateway timed out", retry_after=0.3)
        total = context.get_dependency_field("validate_order", "total")
        return {"charged": total, "attempt": context.attempt, "payment_id": f"pay_{context.get_input('order_id')}"}


class ShipOrder(StepHandler):
    def call(self, context: StepContext) -> Any:
        payment = context.get_dependency_result("charge_payment")
        return {"tracking": f"TRK-{payment['payment_id']}", "carrier": "demo-post"}


class CheckRefundPolicy(StepHandler):
    def call(self, context: StepContext) -> Any:
        amount = context.get_input("amount")
        if amount > context.get_config("limit"):
            raise PermanentError(f"refund of {amount} exceeds the policy limit of {context.get_config('limit')}")
        return {"approved": amount}


class IssueRefund(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"refunded": context.get_dependency_field("check_refund_policy", "approved")}


class NotifyCustomer(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"notified": True}


class Extract(StepHandler):
    def call(self, context: StepContext) -> Any:
        rows = context.get_config("rows")
        return {"source": context.get_config("source"), "rows": rows, "bad_rows": rows // 20}


class Clean(StepHandler):
    def call(self, context: StepContext) -> Any:
        extracted = context.get_dependency_result(context.get_config("source"))
        return {"source": extracted["source"], "clean_rows": extracted["rows"] - extracted["bad_rows"]}


class BuildReport(StepHandler):
    def call(self, context: StepContext) -> Any:
        parts = {name: result for name, result in context.get_all_dependency_results("clean_").items()}
        return {"total_rows": sum(p["clean_rows"] for p in parts.values()), "sources": sorted(parts)}


class CheckRequest(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"amount": context.get_input("amount"), "requester": context.get_input("requester")}


class RouteByAmount(StepHandler):
    """A decision: create only the approval branches this amount needs."""

    def call(self, context: StepContext) -> Any:
        amount = context.get_dependency_field("check_request", "amount")
        if amount < context.get_config("manager_above"):
            return self.decision_success(["auto_approve_spend"], {"route": "auto"})
        if amount < context.get_config("finance_above"):
            return self.decision_success(["manager_signoff"], {"route": "manager"})
        return self.decision_success(["manager_signoff", "finance_signoff"], {"route": "manager+finance"})


class Approve(StepHandler):
    def call(self, context: StepContext) -> Any:
        return {"approved_by": context.get_config("approver")}


class RecordApproval(StepHandler):
    def call(self, context: StepContext) -> Any:
        approvers = sorted(
            result["approved_by"]
            for result in context.get_all_dependency_results("").values()
            if isinstance(result, dict) and "approved_by" in result
        )
        return {"approvers": approvers}


class PlanImport(StepHandler):
    """A batchable step: one worker per range of rows (none at all for an empty import)."""

    def call(self, context: StepContext) -> Any:
        rows = context.get_input("rows")
        ranges = self.create_cursor_ranges(rows, context.get_config("batch_size"))
        if not ranges:
            return self.no_batches_outcome("nothing to import", worker_template_name="import_rows")
        return self.batch_analyzer_success("import_rows", ranges, rows)


class ImportRows(StepHandler):
    def call(self, context: StepContext) -> Any:
        batch = self.batch_worker_inputs(context)
        start = context.checkpoint_cursor if context.has_checkpoint() else batch.start_cursor
        imported = (context.accumulated_results or {}).get("imported", 0)
        for row in range(start, batch.end_cursor):
            imported += 1
            if (row + 1) % 100 == 0:  # persist progress; a retry resumes here
                context.checkpoint_yield(row + 1, row + 1 - batch.start_cursor, {"imported": imported})
        return self.batch_worker_success(
            batch.end_cursor - batch.start_cursor,
            batch_id=batch.batch_id,
            last_cursor=batch.end_cursor,
            imported=imported,
        )


class SummarizeImport(StepHandler):
    def call(self, context: StepContext) -> Any:
        workers = self.aggregate_worker_results(context, "import_rows")
        return {"workers": workers.worker_count, "rows": workers.items_processed, "empty": workers.no_op}
