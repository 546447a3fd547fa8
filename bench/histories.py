"""Realistic saga histories without Kafka: `decide` answered by well-behaved adapters.

Used to put pre-built history straight onto the topics (the rebuild benchmark, rebuild tests):
each checkout gets exactly the events the engine would have written for it, produced by the
saga's own `decide`, with adapters that answer at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from events import messages as m
from saga.checkout import CheckoutEvent, decide
from saga.state import SagaState

T0 = 1_700_000_000_000


class Kind(StrEnum):
    COMPLETED = "completed"  # the normal path, order placed
    DECLINED = "declined"  # payment declined: reservation released, FAILED
    CANCELLED = "cancelled"  # customer cancels while payment is being authorized
    REFUNDED = "refunded"  # completed, then a partial admin refund
    LIVE = "live"  # waiting for the payment reply: stays in memory with its deadline


@dataclass(frozen=True, slots=True)
class Built:
    checkout_id: str
    events: list[CheckoutEvent]
    # The state after each orchestrator transaction (one input = one transaction here): what
    # the engine writes to checkout.snapshots, in order.
    snapshots: list[SagaState]
    outputs: int = 0  # every message the orchestrator wrote for it: events, commands, public

    @property
    def state(self) -> SagaState:
        return self.snapshots[-1]


def start_command(checkout_id: str) -> m.StartCheckout:
    return m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-1",
        customer_id="cus-1",
        customer_email="buyer@example.com",
        currency="EUR",
        items=(m.LineItem("SKU-1", 2, 1250), m.LineItem("SKU-2", 1, 500)),
        shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        payment_provider="stripe",
        payment_method="pm_card_visa",
    )


def build(checkout_id: str, kind: Kind, t0: int = T0) -> Built:
    now = t0
    events: list[CheckoutEvent] = []
    snapshots: list[SagaState] = []
    state: SagaState | None = None
    outputs = 0
    inbox: list[Any] = [start_command(checkout_id)]
    while inbox:
        msg = inbox.pop(0)
        now += 5
        decision = decide(state, msg, now)
        if decision.state is None:
            continue
        state = decision.state
        events.extend(decision.events)
        outputs += len(decision.events) + len(decision.commands) + len(decision.public)
        snapshots.append(state)
        for command in decision.commands:
            reply = _answer(command, kind, now)
            if reply is not None:
                inbox.append(reply)
        if kind is Kind.CANCELLED and any(
            isinstance(c, m.AuthorizePayment) for c in decision.commands
        ):
            inbox.insert(0, m.CancelCheckout(checkout_id, "changed my mind"))
        done = any(isinstance(e, m.CheckoutCompleted) for e in decision.events)
        if kind is Kind.REFUNDED and done:
            inbox.append(m.RequestRefund(checkout_id, f"rr-{checkout_id}", 500, "EUR", "damaged"))
    return Built(checkout_id, events, snapshots, outputs)


def _answer(command: Any, kind: Kind, now: int) -> Any | None:
    cid, attempt = command.checkout_id, command.attempt
    match command:
        case m.ReserveInventory():
            return m.InventoryReserved(cid, attempt, f"res-{cid}", now + 15 * 60_000)
        case m.CalculateTax():
            return m.TaxCalculated(cid, attempt, 300, command.currency, "rate_table")
        case m.QuoteShipping():
            return m.ShippingQuoted(cid, attempt, 500, command.currency, "ups", "ground")
        case m.AuthorizePayment():
            if kind is Kind.LIVE:
                return None  # the reply is still on its way
            if kind is Kind.DECLINED:
                return m.PaymentDeclined(
                    cid, attempt, command.provider, "card_declined", "generic_decline", False
                )
            return m.PaymentAuthorized(
                cid, attempt, command.provider, f"pi-{cid}", command.amount, command.currency
            )
        case m.CommitInventory():
            return m.InventoryCommitted(cid, attempt, command.reservation_id)
        case m.CapturePayment():
            return m.PaymentCaptured(
                cid, attempt, command.provider, command.payment_id, command.amount, command.currency
            )
        case m.ReleaseInventory():
            return m.InventoryReleased(cid, attempt, command.reservation_id)
        case m.VoidPayment():
            return m.PaymentVoided(cid, attempt, command.payment_id)
        case m.RefundPayment():
            return m.PaymentRefunded(
                cid, attempt, command.payment_id, f"re-{cid}", command.amount, command.currency
            )
    return None  # notifications: no reply to the saga


MIX: tuple[Kind, ...] = (
    *([Kind.COMPLETED] * 14),
    Kind.DECLINED,
    Kind.CANCELLED,
    Kind.REFUNDED,
)


def mixed(prefix: str, count: int, live_every: int = 50) -> Iterator[tuple[str, Kind]]:
    """`count` checkout ids with kinds in realistic proportions; every `live_every`-th is live."""
    for i in range(count):
        kind = Kind.LIVE if live_every and i % live_every == live_every - 1 else MIX[i % len(MIX)]
        yield f"{prefix}-{i:07d}", kind
