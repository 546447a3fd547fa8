"""Topic names (a public contract, ARCHITECTURE.md §4) and which topic each message goes to."""

from __future__ import annotations

from events import messages as m

CHECKOUT_COMMANDS = "checkout.commands"
CHECKOUT_EVENTS = "checkout.events"
CHECKOUT_REPLIES = "checkout.replies"
ORDERS_EVENTS = "orders.events"
ADAPTERS = ("inventory", "tax", "shipping", "payment", "notification")


def adapter_requests(adapter: str) -> str:
    return f"adapter.{adapter}.requests"


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


MAIN_TOPICS: tuple[str, ...] = (
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    *(adapter_requests(a) for a in ADAPTERS),
    ORDERS_EVENTS,
)
ALL_TOPICS: tuple[str, ...] = MAIN_TOPICS + tuple(dlq(t) for t in MAIN_TOPICS)

_ADAPTER_OF: dict[type, str] = {
    m.ReserveInventory: "inventory",
    m.CommitInventory: "inventory",
    m.ReleaseInventory: "inventory",
    m.CalculateTax: "tax",
    m.QuoteShipping: "shipping",
    m.AuthorizePayment: "payment",
    m.CapturePayment: "payment",
    m.VoidPayment: "payment",
    m.RefundPayment: "payment",
    m.SendNotification: "notification",
}


def topic_for(message: m.Message) -> str:
    """Where the orchestrator or an adapter writes `message`."""
    kind = type(message)
    if kind in _ADAPTER_OF:
        return adapter_requests(_ADAPTER_OF[kind])
    if isinstance(message, m.OrderPlaced | m.OrderRefunded | m.ShipmentCreated):
        return ORDERS_EVENTS
    if isinstance(
        message,
        m.StartCheckout | m.CancelCheckout | m.RecordPaymentSignal | m.RequestRefund | m.Tick,
    ):
        return CHECKOUT_COMMANDS
    if kind.__name__ in _REPLY_NAMES:
        return CHECKOUT_REPLIES
    return CHECKOUT_EVENTS


_REPLY_NAMES = frozenset(t.__name__ for t in m.AdapterReply.__args__)
