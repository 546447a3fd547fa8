"""Adapters for benchmarks: in-memory, always succeeding, with a fixed simulated latency per
external call. They speak the real reply messages, so the engine does exactly its real work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from events import messages as m

Service = Callable[[Any], Any]


def bench_services(latency_s: float = 0.0) -> dict[str, Service]:
    def call() -> None:
        if latency_s:
            time.sleep(latency_s)  # stands for the provider's round trip

    def inventory(cmd: Any) -> Any:
        call()
        if isinstance(cmd, m.ReserveInventory):
            return m.InventoryReserved(
                cmd.checkout_id, cmd.attempt, f"res-{cmd.checkout_id}", cmd.expires_at
            )
        if isinstance(cmd, m.CommitInventory):
            return m.InventoryCommitted(cmd.checkout_id, cmd.attempt, cmd.reservation_id)
        return m.InventoryReleased(cmd.checkout_id, cmd.attempt, cmd.reservation_id)

    def tax(cmd: m.CalculateTax) -> Any:
        call()
        subtotal = sum(i.quantity * i.unit_amount for i in cmd.items)
        return m.TaxCalculated(cmd.checkout_id, cmd.attempt, subtotal // 10, cmd.currency, "bench")

    def shipping(cmd: m.QuoteShipping) -> Any:
        call()
        return m.ShippingQuoted(
            cmd.checkout_id, cmd.attempt, 500, cmd.currency, "bench", "standard"
        )

    def payment(cmd: Any) -> Any:
        call()
        if isinstance(cmd, m.AuthorizePayment):
            return m.PaymentAuthorized(
                cmd.checkout_id,
                cmd.attempt,
                cmd.provider,
                f"pi-{cmd.checkout_id}",
                cmd.amount,
                cmd.currency,
            )
        if isinstance(cmd, m.CapturePayment):
            return m.PaymentCaptured(
                cmd.checkout_id,
                cmd.attempt,
                cmd.provider,
                cmd.payment_id,
                cmd.amount,
                cmd.currency,
            )
        return m.PaymentVoided(cmd.checkout_id, cmd.attempt, cmd.payment_id)

    return {"inventory": inventory, "tax": tax, "shipping": shipping, "payment": payment}


def start_command(checkout_id: str) -> m.StartCheckout:
    return m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="bench",
        customer_id="cus-bench",
        customer_email="bench@example.com",
        currency="USD",
        items=(m.LineItem("SKU-A", 2, 1999), m.LineItem("SKU-B", 1, 1250)),
        shipping_address=m.Address("1 Market St", "San Francisco", "CA", "94105", "US"),
        payment_provider="stripe",
        payment_method="pm_card_visa",
    )
