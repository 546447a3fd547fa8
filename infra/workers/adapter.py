"""An adapter processor: adapter.<name>.requests in, typed replies to checkout.replies out.

The service behind it (inventory, tax, shipping, payment, notification) owns breakers, timeouts
and bounded retries, and turns every business or provider failure into a reply; anything it
raises is a bug or an outage, which the runtime retries and finally dead-letters.

Provider calls are slow (tens to hundreds of ms), so a batch is handled concurrently: one lane
per checkout (its commands stay in order), lanes in parallel on a thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from adapters.shipping.quoting import FLAT_RATE_CARRIER
from adapters.tax.port import SOURCE_RATE_TABLE_FALLBACK
from events import messages as m
from events.topics import CHECKOUT_REPLIES
from infra.logs import bound
from infra.metrics import Metrics
from infra.processor import BaseHandler, Incoming, Output, log_fields

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


# Lanes an adapter runs at once. An adapter's batch is capped to it (infra/bootstrap.py), so a
# batch lasts about as long as its slowest provider call, never several calls in a row: its
# replies are committed together and a 500-command batch of 5 s calls on 32 lanes would end
# after the saga's reply timeout (docs/chaos.md findings 2 and 7). While one call of a batch
# hangs to its 10 s timeout the others wait with it, so a worker answers about LANES per 10 s
# under a provider that hangs now and then: 128 is twice the long chaos profile's payment load.
LANES = 128


class AdapterHandler(BaseHandler):
    def __init__(
        self,
        name: str,
        service: Callable[[Any], Any],
        concurrency: int = LANES,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._service = service
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"adapter-{name}")
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
            reply, 0, producer=f"adapter.{self.name}", occurred_at=message.timestamp
        )
        return [Output(CHECKOUT_REPLIES, envelope)]

    def handle_many(self, messages: list[Incoming]) -> list[Sequence[Output] | BaseException]:
        lanes: dict[str, list[int]] = {}
        for i, message in enumerate(messages):
            lanes.setdefault(message.envelope.key, []).append(i)
        results: list[Sequence[Output] | BaseException] = [() for _ in messages]

        def run_lane(indexes: list[int]) -> None:
            for i in indexes:
                try:
                    # Pool threads do not inherit the caller's context: bind here.
                    with bound(**log_fields(messages[i])):
                        results[i] = self.handle(messages[i])
                except Exception as e:  # the runtime counts it and retries or dead-letters
                    results[i] = e

        if len(lanes) == 1:
            run_lane(next(iter(lanes.values())))
        else:
            for future in [self._pool.submit(run_lane, idx) for idx in lanes.values()]:
                future.result()
        return results
