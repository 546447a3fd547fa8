"""Order summaries for the templates, taken from the public order events themselves.

OrderPlaced carries the lines and every amount, so the confirmation email needs no read model:
`from_order_placed` turns the event into an `OrderSummary`, and `EventSummaries` is a bounded
`SummaryLookup` fed by the events a worker consumes (for the SendNotification path)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from adapters.notifications.templates import OrderSummary, SummaryLine
from events.messages import OrderPlaced, OrderRefunded


def from_order_placed(event: OrderPlaced) -> OrderSummary:
    return OrderSummary(
        checkout_id=event.checkout_id,
        currency=event.currency,
        order_id=event.order_id,
        lines=tuple(SummaryLine(i.sku, i.quantity, i.unit_amount) for i in event.items),
        subtotal=event.subtotal,
        tax=event.tax,
        shipping=event.shipping,
        total=event.total,
    )


def from_order_refunded(event: OrderRefunded) -> OrderSummary:
    return OrderSummary(
        checkout_id=event.checkout_id,
        currency=event.currency,
        order_id=event.order_id,
        refund_amount=event.amount,
    )


class EventSummaries:
    """The last `capacity` orders seen, by checkout id. Bounded: a long-running worker must not
    grow without limit; a miss only means a shorter email (amounts are omitted, never zero)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._by_checkout: OrderedDict[str, OrderSummary] = OrderedDict()

    def observe(self, event: OrderPlaced) -> None:
        with self._lock:
            self._by_checkout[event.checkout_id] = from_order_placed(event)
            self._by_checkout.move_to_end(event.checkout_id)
            while len(self._by_checkout) > self._capacity:
                self._by_checkout.popitem(last=False)

    def summary(self, checkout_id: str, order_id: str | None) -> OrderSummary | None:
        with self._lock:
            return self._by_checkout.get(checkout_id)
