"""Scripted adapter services for orchestrator tests: deterministic, effect-counting, and speaking
the real reply messages. Each effect is keyed by idempotency key, as a real provider's would be,
so a redelivered command is answered without a second effect."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from events import messages as m

OUT_OF_STOCK_SKU = "SKU-GONE"
DECLINED_METHOD = "pm_card_chargeDeclined"


@dataclass
class ScriptedWorld:
    effects: Counter[str] = field(default_factory=Counter)  # idempotency key -> times applied
    captured: Counter[str] = field(default_factory=Counter)  # checkout -> amount
    released: Counter[str] = field(default_factory=Counter)
    voided: Counter[str] = field(default_factory=Counter)
    payment_commands: Counter[str] = field(default_factory=Counter)
    quotes: Counter[str] = field(default_factory=Counter)  # checkout -> tax and shipping asked
    # A gate the test controls: authorizations wait at it, so the test can kill the
    # orchestrator while a saga is provably mid-flight.
    gate_authorizations: bool = False
    # While set, every release fails permanently (a broken inventory database): the saga parks.
    releases_broken: bool = False
    authorization_gate: threading.Event = field(default_factory=threading.Event)
    authorization_requested: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _once(self, key: str) -> bool:
        with self._lock:
            self.effects[key] += 1
            return self.effects[key] == 1

    def inventory(self, cmd: Any) -> Any:
        if isinstance(cmd, m.ReserveInventory):
            if any(i.sku == OUT_OF_STOCK_SKU for i in cmd.items):
                return m.InventoryReservationRejected(
                    cmd.checkout_id, cmd.attempt, "out of stock: SKU-GONE", retryable=False
                )
            self._once(cmd.idempotency_key)
            return m.InventoryReserved(
                cmd.checkout_id, cmd.attempt, f"res-{cmd.checkout_id}", expires_at=cmd.expires_at
            )
        if isinstance(cmd, m.CommitInventory):
            self._once(cmd.idempotency_key)
            return m.InventoryCommitted(cmd.checkout_id, cmd.attempt, cmd.reservation_id)
        if isinstance(cmd, m.ReleaseInventory):
            if self.releases_broken:
                return m.InventoryReleaseFailed(
                    cmd.checkout_id, cmd.attempt, "inventory database is read-only", False
                )
            if self._once(cmd.idempotency_key):
                self.released[cmd.checkout_id] += 1
            return m.InventoryReleased(cmd.checkout_id, cmd.attempt, cmd.reservation_id)
        raise TypeError(type(cmd).__name__)

    def tax(self, cmd: m.CalculateTax) -> Any:
        with self._lock:
            self.quotes[cmd.checkout_id] += 1
        subtotal = sum(i.quantity * i.unit_amount for i in cmd.items)
        return m.TaxCalculated(
            cmd.checkout_id, cmd.attempt, subtotal // 10, cmd.currency, "scripted"
        )

    def shipping(self, cmd: m.QuoteShipping) -> Any:
        with self._lock:
            self.quotes[cmd.checkout_id] += 1
        return m.ShippingQuoted(
            cmd.checkout_id, cmd.attempt, 500, cmd.currency, "scripted", "standard"
        )

    def payment(self, cmd: Any) -> Any:
        with self._lock:
            self.payment_commands[cmd.checkout_id] += 1
        if isinstance(cmd, m.AuthorizePayment):
            self.authorization_requested.set()
            if self.gate_authorizations and not self.authorization_gate.wait(60):
                raise TimeoutError("the test never opened the authorization gate")
            if cmd.payment_method == DECLINED_METHOD:
                return m.PaymentDeclined(
                    cmd.checkout_id,
                    cmd.attempt,
                    cmd.provider,
                    "card_declined",
                    "card_declined",
                    retryable=False,
                )
            self._once(cmd.idempotency_key)
            return m.PaymentAuthorized(
                cmd.checkout_id,
                cmd.attempt,
                cmd.provider,
                f"pi-{cmd.checkout_id}",
                cmd.amount,
                cmd.currency,
            )
        if isinstance(cmd, m.CapturePayment):
            if self._once(cmd.idempotency_key):
                self.captured[cmd.checkout_id] += cmd.amount
            return m.PaymentCaptured(
                cmd.checkout_id, cmd.attempt, cmd.provider, cmd.payment_id, cmd.amount, cmd.currency
            )
        if isinstance(cmd, m.VoidPayment):
            if self._once(cmd.idempotency_key):
                self.voided[cmd.checkout_id] += 1
            return m.PaymentVoided(cmd.checkout_id, cmd.attempt, cmd.payment_id)
        if isinstance(cmd, m.RefundPayment):
            return m.PaymentRefunded(
                cmd.checkout_id,
                cmd.attempt,
                cmd.payment_id,
                f"re-{cmd.idempotency_key}",
                cmd.amount,
                cmd.currency,
            )
        raise TypeError(type(cmd).__name__)

    def notification(self, cmd: m.SendNotification) -> Any:
        return m.NotificationSent(cmd.checkout_id, cmd.attempt, cmd.kind)

    def services(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "tax": self.tax,
            "shipping": self.shipping,
            "payment": self.payment,
            "notification": self.notification,
        }
