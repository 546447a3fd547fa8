"""An adapter processor: adapter.<name>.requests in, typed replies to checkout.replies out.

The service behind it (inventory, tax, shipping, payment, notification) owns breakers, timeouts
and bounded retries, and turns every business or provider failure into a reply; anything it
raises is a bug or an outage, which the runtime retries and finally dead-letters.

Provider calls are slow (tens to hundreds of ms, and 20 s when one hangs), so they run side by
side and each reply is committed as its call ends: infra/pipelined.py, one lane per checkout
and adapter (its commands stay in order), LANES lanes at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from adapters.shipping.quoting import FLAT_RATE_CARRIER
from adapters.tax.port import SOURCE_RATE_TABLE_FALLBACK
from events import messages as m
from events.topics import CHECKOUT_REPLIES
from infra.metrics import Metrics
from infra.processor import BaseHandler, Incoming, Output

# Replies that say a step did not succeed (the payment failure rate counts these).
FAILED_REPLIES = (
    m.InventoryReservationRejected,
    m.InventoryCommitFailed,
    m.InventoryReleaseFailed,
    m.TaxCalculationFailed,
    m.ShippingQuoteFailed,
    m.PaymentDeclined,
    m.PaymentCaptureFailed,
    m.PaymentVoidFailed,
    m.PaymentRefundFailed,
)


def is_fallback(reply: Any) -> bool:
    """Answered by the fallback, not the provider: told apart by the reply itself, so the
    adapters stay free of metrics."""
    if isinstance(reply, m.TaxCalculated):
        return reply.source == SOURCE_RATE_TABLE_FALLBACK
    if isinstance(reply, m.ShippingQuoted):
        return reply.carrier == FLAT_RATE_CARRIER
    return False


# Calls an adapter worker runs at once (and records it holds unanswered). One hung call holds
# only its own lane and its partition's committed offset, not the other replies (docs/chaos.md
# finding 9); 128 is twice the long chaos profile's payment load.
LANES = 128


class AdapterHandler(BaseHandler):
    def __init__(
        self,
        name: str,
        service: Callable[[Any], Any],
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._service = service
        self._metrics = metrics if metrics is not None else Metrics()

    def handle(self, message: Incoming) -> Sequence[Output]:
        reply = self._service(message.envelope.message)
        if reply is None:
            return []
        outcome = "failed" if isinstance(reply, FAILED_REPLIES) else "ok"
        self._metrics.adapter_replies.labels(self.name, type(reply).__name__, outcome).inc()
        if is_fallback(reply):
            self._metrics.adapter_fallbacks.labels(self.name).inc()
        envelope = message.envelope.caused(
            reply,
            0,
            producer=f"adapter.{self.name}",
            occurred_at=message.timestamp,
            scope=answer_scope(reply),
        )
        return [Output(CHECKOUT_REPLIES, envelope)]


def answer_scope(reply: Any) -> str:
    """What a reply's id is derived from besides its request's: the answer itself.

    A provider call asked again can answer differently (a refund that failed, then went
    through). Both answers may be committed: a worker that dies with a call in flight leaves the
    answered requests above it to be asked again (infra/pipelined.py). Under one id, readers
    that deduplicate by id kept only the first, and the refund that moved money vanished from
    the log (docs/chaos.md finding 9). The same answer still gets the same id."""
    return hashlib.sha256(repr(reply).encode()).hexdigest()[:16]


class AdaptersHandler(BaseHandler):
    """Several adapters behind one consumer and one producer (`--role adapters`): each request
    goes to its topic's adapter. One process, one poll loop and one transaction per pass serve
    what took a process, a loop and a transaction each (ADR 0023)."""

    def __init__(self, by_topic: dict[str, AdapterHandler]) -> None:
        self._by_topic = by_topic

    def handle(self, message: Incoming) -> Sequence[Output]:
        return self._by_topic[message.topic].handle(message)
