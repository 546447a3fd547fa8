"""Envelopes of the events the notifier consumes, with unique ids per call."""

from __future__ import annotations

import time
import uuid
from typing import Any

from events import messages as m
from events.envelope import Envelope

ADDRESS = m.Address("1 Market St", "San Francisco", "CA", "94105", "US")
LINES = (m.LineItem("SKU-TSHIRT-BLK-M", 2, 1999), m.LineItem("SKU-MUG-LOGO", 1, 1250))


def _wrap(message: Any) -> Envelope[Any]:
    return Envelope.new(message, occurred_at=int(time.time() * 1000), producer="test")


def new_ids() -> tuple[str, str]:
    run = uuid.uuid4().hex[:10]
    return f"co-{run}", f"ord-{run}"


def order_placed(checkout_id: str, order_id: str, email: str) -> Envelope[m.OrderPlaced]:
    # 2 x 19.99 + 12.50 = 52.48; tax 4.46; shipping 9.99 -> 66.93
    return _wrap(
        m.OrderPlaced(
            order_id, checkout_id, "shop", "cus-1", email, LINES, ADDRESS,
            5248, 446, 999, 6693, "USD", 1_700_000_000_000,
        )
    )  # fmt: skip


def checkout_started(checkout_id: str, email: str) -> Envelope[m.CheckoutStarted]:
    return _wrap(
        m.CheckoutStarted(
            checkout_id, "shop", "cus-1", email, "USD", LINES, ADDRESS,
            "stripe", "pm_card_visa", 5248, 1_700_000_000_000,
        )
    )  # fmt: skip


def checkout_failed(checkout_id: str, reason: str) -> Envelope[m.CheckoutFailed]:
    return _wrap(m.CheckoutFailed(checkout_id, m.Step.RESERVE_INVENTORY, reason))


def checkout_cancelled(checkout_id: str) -> Envelope[m.CheckoutCancelled]:
    return _wrap(m.CheckoutCancelled(checkout_id, "customer"))


def order_refunded(checkout_id: str, order_id: str, amount: int) -> Envelope[m.OrderRefunded]:
    refund_id = f"re_{uuid.uuid4().hex[:10]}"
    return _wrap(m.OrderRefunded(order_id, checkout_id, refund_id, amount, "USD", 1))
