"""Topic names (a public contract, ARCHITECTURE.md §4) and which topic each message goes to."""

from __future__ import annotations

from typing import get_args

from events import messages as m

CHECKOUT_COMMANDS = "checkout.commands"
CHECKOUT_EVENTS = "checkout.events"
CHECKOUT_REPLIES = "checkout.replies"
ORDERS_EVENTS = "orders.events"
# The latest snapshot of each saga's state (docs/decisions/0014): an optimisation of the rebuild,
# never the truth, so compacted and without a DLQ.
CHECKOUT_SNAPSHOTS = "checkout.snapshots"
# The final snapshot of each terminal saga, read one record at a time (by offset) when a late
# input arrives for it; checkout.snapshots then holds only a pointer to it.
CHECKOUT_SNAPSHOTS_FINAL = "checkout.snapshots.final"
# Threshold alerts from analytics (ADR 0018), keyed by alert name: operators and paging read
# them; a bounded retention, as an alert is acted on within hours, not kept as the record.
OPS_ALERTS = "ops.alerts"
ADAPTERS = ("inventory", "tax", "shipping", "payment", "notification")
# The adapters whose replies the saga waits for: what one `saga worker --role adapters` serves
# (notification requests are the notifier's, as in `saga run`).
SAGA_ADAPTERS = ("inventory", "tax", "shipping", "payment")
# The consumer group of that worker, and of the one that serves only `adapter`.
ADAPTERS_GROUP = "adapters"


def adapter_group(adapter: str) -> str:
    return f"adapter-{adapter}"


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
ALL_TOPICS: tuple[str, ...] = (
    MAIN_TOPICS
    + tuple(dlq(t) for t in MAIN_TOPICS)
    + (CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL, OPS_ALERTS)
)

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
    if isinstance(message, m.OpsAlert):
        return OPS_ALERTS
    if isinstance(
        message,
        m.StorefrontCommand,
    ):
        return CHECKOUT_COMMANDS
    if kind.__name__ in _REPLY_NAMES:
        return CHECKOUT_REPLIES
    return CHECKOUT_EVENTS


_REPLY_NAMES = frozenset(t.__name__ for t in m.AdapterReply.__args__)


def _names(*unions: object) -> frozenset[str]:
    return frozenset(t.__name__ for u in unions for t in get_args(u))


# What each topic of the contract carries, by message type name (a later version of a class is
# still the same message). Enforced once, in the processor loop: anything else is dead-lettered
# with `refusal_on`'s reason, so a valid record of the wrong type never vanishes.
ACCEPTED: dict[str, frozenset[str]] = {
    CHECKOUT_COMMANDS: _names(m.StorefrontCommand),
    CHECKOUT_REPLIES: _names(m.AdapterReply),
    # Accepted replies are appended to the record as they are (see the orchestrator).
    CHECKOUT_EVENTS: _names(m.SagaEvent, m.AdapterReply),
    ORDERS_EVENTS: _names(m.PublicEvent),
    OPS_ALERTS: frozenset({m.OpsAlert.__name__}),
    **{
        adapter_requests(a): frozenset(t.__name__ for t, name in _ADAPTER_OF.items() if name == a)
        for a in ADAPTERS
    },
}


def refusal_on(topic: str, message: object) -> str | None:
    """Why `message` does not belong on `topic`, or None. Topics outside the contract (a test's
    own topics, dead-letter topics) carry anything."""
    accepted = ACCEPTED.get(topic)
    name = type(message).__name__
    if accepted is None or name in accepted:
        return None
    return f"{name} is not accepted on topic {topic}"


# Retention is part of the contract (ARCHITECTURE.md §4). The record never deletes; work topics
# keep a week, long enough to re-drive or debug any in-flight step; dead letters stay until an
# operator acts on them.
FOREVER = "-1"
WORK_RETENTION_MS = str(7 * 24 * 3600 * 1000)
RECORD_TOPICS: frozenset[str] = frozenset({CHECKOUT_EVENTS, ORDERS_EVENTS})


def keeps_forever(topic: str) -> bool:
    return topic in RECORD_TOPICS or topic.endswith(".dlq")


# Snapshots: one record per checkout survives compaction. The active segment is never cleaned,
# so it rolls every 10 minutes (or 16 MiB), and the cleaner runs once a tenth of the log is
# superseded; max.compaction.lag bounds how long a superseded snapshot is read at a rebuild.
SNAPSHOT_TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),
    "segment.bytes": str(16 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.1",
    "max.compaction.lag.ms": str(60 * 60 * 1000),
}


def topic_config(topic: str) -> dict[str, str]:
    """The configs a topic must have. `cleanup.policy=delete` on the record too: compaction
    would keep one event per checkout and lose the history."""
    if topic in (CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL):
        return dict(SNAPSHOT_TOPIC_CONFIG)
    if keeps_forever(topic):
        return {"cleanup.policy": "delete", "retention.ms": FOREVER, "retention.bytes": FOREVER}
    return {"cleanup.policy": "delete", "retention.ms": WORK_RETENTION_MS}
