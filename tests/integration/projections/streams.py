"""Realistic checkout event streams for projection tests, made by the saga itself.

A tiny world answers the saga's commands (success, out of stock, decline) and feeds the replies
back through `decide`, so the events are exactly what the orchestrator would append to
checkout.events and orders.events. Message ids are derived from the checkout id, so building the
same stream twice gives identical envelopes (as a redelivery would).
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from events import messages as m
from events.envelope import Envelope
from events.topics import CHECKOUT_EVENTS, ORDERS_EVENTS
from saga.checkout import decide, evolve
from saga.state import SagaState

DAY_MS = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
OUT_OF_STOCK = "SKU-GONE"
DECLINE = "pm_card_declined"


@dataclass(frozen=True)
class Scenario:
    checkout_id: str
    start_ms: int = T0
    currency: str = "EUR"
    unit_amount: int = 1250
    quantity: int = 2
    out_of_stock: bool = False
    declined: bool = False
    refunds: tuple[int, ...] = ()  # admin refunds after completion, in minor units
    step_ms: int = 150  # time between one message and the next


def _reply(cmd: Any, s: Scenario, now: int) -> m.Message | None:
    cid, a = cmd.checkout_id, cmd.attempt
    match cmd:
        case m.ReserveInventory():
            if s.out_of_stock:
                return m.InventoryReservationRejected(cid, a, "out of stock", False)
            return m.InventoryReserved(cid, a, f"res-{cid}", now + 600_000)
        case m.CalculateTax():
            return m.TaxCalculated(cid, a, s.unit_amount * s.quantity // 10, s.currency, "table")
        case m.QuoteShipping():
            return m.ShippingQuoted(cid, a, 500, s.currency, "dhl", "standard")
        case m.AuthorizePayment():
            if s.declined:
                return m.PaymentDeclined(cid, a, cmd.provider, "card_declined", "generic", False)
            return m.PaymentAuthorized(cid, a, cmd.provider, f"pi-{cid}", cmd.amount, cmd.currency)
        case m.CommitInventory():
            return m.InventoryCommitted(cid, a, cmd.reservation_id)
        case m.CapturePayment():
            return m.PaymentCaptured(cid, a, cmd.provider, cmd.payment_id, cmd.amount, cmd.currency)
        case m.ReleaseInventory():
            return m.InventoryReleased(cid, a, cmd.reservation_id)
        case m.VoidPayment():
            return m.PaymentVoided(cid, a, cmd.payment_id)
        case m.RefundPayment():
            return m.PaymentRefunded(
                cid, a, cmd.payment_id, f"re-{cmd.idempotency_key}", cmd.amount, cmd.currency
            )
    return None


def checkout_stream(s: Scenario) -> list[tuple[str, Envelope[Any]]]:
    """(topic, envelope) in the order the orchestrator would produce them."""
    cid = s.checkout_id
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"projection-test/{cid}")
    out: list[tuple[str, Envelope[Any]]] = []
    state: SagaState | None = None
    now = s.start_ms
    queue: deque[m.Message] = deque([_start(s)])
    pending_refunds = list(s.refunds)
    while queue or pending_refunds:
        if not queue:
            amount = pending_refunds.pop(0)
            rid = f"rr-{cid}-{len(pending_refunds)}"
            queue.append(m.RequestRefund(cid, rid, amount, s.currency, "customer asked"))
        message = queue.popleft()
        now += s.step_ms
        decision = decide(state, message, now)
        for event in decision.events:
            state = evolve(state, event)
        produced: list[tuple[str, Any]] = [
            *((CHECKOUT_EVENTS, e) for e in decision.events),
            *((ORDERS_EVENTS, p) for p in decision.public),
        ]
        for topic, item in produced:
            envelope = Envelope.new(
                item,
                occurred_at=now,
                producer="orchestrator",
                message_id=str(uuid.uuid5(namespace, str(len(out)))),
            )
            out.append((topic, envelope))
        for command in decision.commands:
            reply = _reply(command, s, now)
            if reply is not None:
                queue.append(reply)
    return out


def _start(s: Scenario) -> m.StartCheckout:
    sku = OUT_OF_STOCK if s.out_of_stock else "SKU-1"
    return m.StartCheckout(
        checkout_id=s.checkout_id,
        tenant_id="shop-1",
        customer_id="cus-1",
        customer_email="buyer@example.com",
        currency=s.currency,
        items=(m.LineItem(sku, s.quantity, s.unit_amount),),
        shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        payment_provider="stripe",
        payment_method=DECLINE if s.declined else "pm_card_visa",
    )


def mixed_streams(prefix: str, n: int = 8) -> list[tuple[str, Envelope[Any]]]:
    """n checkouts of every kind, interleaved as several partitions' worth of traffic would be."""
    kinds = [
        {},
        {"out_of_stock": True},
        {"declined": True},
        {"refunds": (300, 200)},
        {"currency": "USD"},
    ]
    streams = [
        checkout_stream(
            Scenario(f"{prefix}-{i}", start_ms=T0 + (i % 3) * DAY_MS + i * 1000, **kinds[i % 5])
        )
        for i in range(n)
    ]
    merged: list[tuple[str, Envelope[Any]]] = []
    while any(streams):
        for stream in streams:
            if stream:
                merged.append(stream.pop(0))
    return merged
