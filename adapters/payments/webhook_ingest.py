"""A provider webhook in, one `RecordPaymentSignal` on `checkout.commands` out, acknowledged.

The HTTP endpoints (`POST /v1/webhooks/stripe`, `/v1/webhooks/razorpay`) call
`WebhookIngest(payload, signature[, event_id])` with the raw body and the provider's signature
header and answer 2xx only when the call returns:

* an invalid signature raises `InvalidSignature` (answer 400: Stripe does not retry a 4xx that
  it caused, and an attacker learns nothing);
* a duplicate or an event we do not turn into a signal returns quietly (answer 200);
* a signal is produced keyed by checkout_id (so it lands on the saga's partition, after the
  StartCheckout that created the checkout) and we *wait for the broker's ack*: answering 200
  before the ack would let a broker failure lose the webhook for good, since Stripe would not
  send it again. If producing fails or the ack does not come in time, the dedup claim is
  released and `WebhookNotRecorded` is raised (answer 5xx), so Stripe's redelivery is accepted.

A produce that times out here may still land later; the redelivery then produces a second copy
with the *same* message id (derived from the provider event id), and the saga ignores it by
`provider_event_id`. So the worst case is a duplicate the saga drops, never a lost signal.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from adapters.payments.webhooks import InvalidSignature
from events.envelope import Envelope
from events.messages import RecordPaymentSignal
from events.serde import Serde
from events.topics import CHECKOUT_COMMANDS

__all__ = ["InvalidSignature", "WebhookIngest", "WebhookNotRecorded"]

# Fixed namespace: the envelope id of a webhook signal is a function of (provider, event id), so
# every redelivery of one provider event carries the same message id.
WEBHOOK_NAMESPACE = uuid.UUID("0b7f3c1e-5a52-4d8e-9a0c-2f61c7e4d903")
DEFAULT_ACK_TIMEOUT_S = 10.0


class WebhookNotRecorded(Exception):
    """The signal could not be durably written; the provider must redeliver (answer 5xx)."""


class SignalSource(Protocol):
    """What `StripeWebhookHandler` offers: verify + dedup + translate, and undoing a claim."""

    def handle_webhook(
        self, payload: bytes, signature_header: str, now: int, event_id: str | None = None
    ) -> RecordPaymentSignal | None: ...

    def release(self, event_id: str) -> None: ...


class KafkaProducer(Protocol):
    """The part of `confluent_kafka.Producer` we use (a fake in unit tests)."""

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...


class WebhookIngest:
    def __init__(
        self,
        handler: SignalSource,
        producer: KafkaProducer,
        serde: Serde,
        *,
        topic: str = CHECKOUT_COMMANDS,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        producer_name: str = "webhooks",
    ) -> None:
        self._handler = handler
        self._producer = producer
        self._serde = serde
        self._topic = topic
        self._ack_timeout = ack_timeout_s
        self._clock = clock
        self._producer_name = producer_name

    def __repr__(self) -> str:
        # The handler holds the endpoint secrets; its own repr hides them, ours does not nest it.
        return f"WebhookIngest(topic={self._topic!r})"

    def __call__(self, payload: bytes, signature: str, event_id: str | None = None) -> None:
        """`event_id`: the provider's event id when it travels outside the signed body
        (Razorpay's `X-Razorpay-Event-Id`); Stripe's is inside the body."""
        now_s = self._clock()
        signal = self._handler.handle_webhook(payload, signature, int(now_s), event_id)
        if signal is None:
            return  # duplicate, or an event that is not a saga signal
        try:
            self._produce_and_wait(signal, occurred_at=int(now_s * 1000))
        except BaseException as e:
            # Whatever went wrong (broker down, ack timeout, even an interrupt), the claim must
            # not outlive a signal we could not record, or the provider's retry would be dropped.
            self._handler.release(signal.provider_event_id)
            if isinstance(e, Exception) and not isinstance(e, WebhookNotRecorded):
                raise WebhookNotRecorded(f"could not record webhook signal: {e}") from e
            raise

    def _produce_and_wait(self, signal: RecordPaymentSignal, *, occurred_at: int) -> None:
        envelope = Envelope.new(
            signal,
            occurred_at=occurred_at,
            producer=self._producer_name,
            message_id=str(
                uuid.uuid5(WEBHOOK_NAMESPACE, f"{signal.provider}/{signal.provider_event_id}")
            ),
        )
        value = self._serde.encode(envelope, self._topic)
        acked = threading.Event()
        outcome: list[Any] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            outcome.append(err)
            acked.set()

        self._producer.produce(
            self._topic,
            value=value,
            key=envelope.key.encode(),
            headers=[("message_type", envelope.type.encode())],
            on_delivery=on_delivery,
        )
        # Delivery callbacks run inside poll(); another thread polling the same producer may
        # serve ours, hence the event rather than poll()'s return value.
        deadline = time.monotonic() + self._ack_timeout
        while not acked.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WebhookNotRecorded(
                    f"no broker ack within {self._ack_timeout}s for event "
                    f"{signal.provider_event_id}"
                )
            self._producer.poll(min(0.1, remaining))
        if outcome[0] is not None:
            raise WebhookNotRecorded(f"broker rejected webhook signal: {outcome[0]}")
