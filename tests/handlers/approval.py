"""Conditional approval (reference §14.2): a decision step routes a spend request by amount.

Below ``small_limit`` only ``auto_approve`` is created; from ``small_limit`` to below ``large_limit`` only
``manager_approval``; from ``large_limit`` on ``manager_approval`` and ``finance_review``. The context may carry
``force_steps`` to make the decision name other steps (tests of refused outcomes).
"""

from __future__ import annotations

from typing import Any

from tasker import PermanentError, StepContext, StepHandler

BRANCHES = ("auto_approve", "manager_approval", "finance_review")


class ValidateRequest(StepHandler):
    def call(self, context: StepContext) -> Any:
        amount = float(context.get_input("amount"))
        if amount <= 0:
            raise PermanentError("amount must be positive")
        return {"amount": amount, "requester": context.get_input("requester")}


class RoutingDecision(StepHandler):
    def call(self, context: StepContext) -> Any:
        forced = context.get_input("force_steps")
        if forced is not None:
            return self.decision_success(forced, {"forced": True})
        amount = context.get_dependency_result("validate_request")["amount"]
        small, large = context.get_config("small_limit"), context.get_config("large_limit")
        if amount < small:
            steps, route = ["auto_approve"], "auto"
        elif amount < large:
            steps, route = ["manager_approval"], "manager"
        else:
            steps, route = ["manager_approval", "finance_review"], "dual"
        return self.decision_success(steps, {"amount": amount, "route": route}, route_type=route)


class _Approval(StepHandler):
    role = "approver"

    def call(self, context: StepContext) -> Any:
        amount = context.get_dependency_result("validate_request")["amount"]
        return {"approved": True, "role": self.role, "amount": amount}


class AutoApprove(_Approval):
    role = "system"


class ManagerApproval(_Approval):
    role = "manager"


class FinanceReview(_Approval):
    role = "finance"


class FinalizeApproval(StepHandler):
    def call(self, context: StepContext) -> Any:
        approvals = {
            name: context.get_dependency_result(name) for name in BRANCHES if name in context.dependency_results
        }
        return {
            "approved": bool(approvals) and all(a["approved"] for a in approvals.values()),
            "approvals": sorted(approvals),
            "route": context.get_dependency_field("routing_decision", "route_type"),
        }
