"""Order fulfilment handlers: validate, reserve, charge, ship."""

from __future__ import annotations

from typing import Any

from tasker import PermanentError, StepContext, StepHandler


class ValidateOrder(StepHandler):
    def call(self, context: StepContext) -> Any:
        items = context.get_input("items")
        if any(item["quantity"] <= 0 for item in items):
            raise PermanentError("every item needs a positive quantity")
        total = round(sum(item["quantity"] * item["price"] for item in items), 2)
        return {"customer_id": context.get_input("customer")["id"], "total": total, "item_count": len(items)}


class ReserveInventory(StepHandler):
    def call(self, context: StepContext) -> Any:
        order = context.get_dependency_result("validate_order")
        skus = [item["sku"] for item in context.get_input("items")]
        return {"reserved": skus, "minutes": context.get_config("reservation_minutes"), "total": order["total"]}


class ProcessPayment(StepHandler):
    def call(self, context: StepContext) -> Any:
        total = context.get_dependency_field("validate_order", "total")
        return {"charged": total, "method": context.get_input("payment")["method"], "payment_id": "pay_1"}


class ShipOrder(StepHandler):
    def call(self, context: StepContext) -> Any:
        payment = context.get_dependency_result("process_payment")
        return {"shipped": True, "payment_id": payment["payment_id"], "to": context.get_input("shipping")["address"]}
