"""Stripe webhooks -> `RecordPaymentSignal`: verified, deduplicated by event id, normalised.

Verification uses the SDK (`WebhookSignature.verify_header`) against every configured secret, so
during a secret rotation both the old and the new endpoint secret are accepted (Stripe then sends
one v1 signature per active secret; the SDK accepts the header if any v1 matches). The SDK checks
the tolerance against the wall clock; we check it against the caller's `now` instead, in both
directions, so it is testable and a far-future timestamp is rejected as well.

Dedup: `claim` marks an event id before the signal is handed to the caller; if producing the
signal then fails the caller must `release` it so Stripe's redelivery is not dropped. The saga
deduplicates by `provider_event_id` too (PaymentSignalRecorded), so a crash between claim and
produce costs at most one redelivery from Stripe, never a lost or doubled signal.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import stripe

from events.messages import PaymentSignal, RecordPaymentSignal

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE_S = 300
DEDUP_TTL_S = 7 * 24 * 3600  # Stripe retries a webhook for up to 3 days


class InvalidSignature(Exception):
    """The payload is not provably from Stripe (bad/missing signature, or outside tolerance)."""


class WebhookEventStore(Protocol):
    def claim(self, event_id: str) -> bool:
        """True the first time an event id is claimed (within the retention window)."""
        ...

    def release(self, event_id: str) -> None: ...


class InMemoryEventStore:
    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen.add(event_id)
            return True

    def release(self, event_id: str) -> None:
        with self._lock:
            self._seen.discard(event_id)


class RedisEventStore:
    """SET NX EX: atomic first-claim across every API replica."""

    def __init__(
        self, client: Any, *, ttl_s: int = DEDUP_TTL_S, prefix: str = "webhook:stripe:"
    ) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._prefix = prefix

    def claim(self, event_id: str) -> bool:
        return bool(self._redis.set(self._prefix + event_id, b"1", nx=True, ex=self._ttl))

    def release(self, event_id: str) -> None:
        self._redis.delete(self._prefix + event_id)


# Resolves a payment id to its checkout when an event's object lacks our metadata
# (charge.refunded on providers that do not copy the PaymentIntent's metadata to the charge).
CheckoutResolver = Callable[[str], "str | None"]


class StripeWebhookHandler:
    def __init__(
        self,
        secrets: Sequence[str],
        store: WebhookEventStore,
        *,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        resolve_checkout: CheckoutResolver | None = None,
        provider: str = "stripe",
    ) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        self._secrets = tuple(secrets)
        self._store = store
        self._tolerance = tolerance_s
        self._resolve = resolve_checkout
        self._provider = provider

    def __repr__(self) -> str:  # never show the secrets
        return f"StripeWebhookHandler(provider={self._provider!r}, secrets=<{len(self._secrets)}>)"

    def verify(self, payload: bytes, signature_header: str, now: int) -> Mapping[str, Any]:
        timestamp = _timestamp(signature_header)
        if not any(_matches(payload, signature_header, s) for s in self._secrets):
            raise InvalidSignature("no v1 signature matches a configured secret")
        if abs(now - timestamp) > self._tolerance:
            raise InvalidSignature(f"timestamp {timestamp} outside the tolerance window")
        try:
            event = json.loads(payload)
        except ValueError as e:
            raise InvalidSignature("signed payload is not JSON") from e
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise InvalidSignature("signed payload is not an event")
        return event

    def handle_webhook(
        self, payload: bytes, signature_header: str, now: int, event_id: str | None = None
    ) -> RecordPaymentSignal | None:
        # `event_id` is ignored: Stripe's event id is inside the signed body, which is the
        # only place an id can be trusted.
        del event_id
        event = self.verify(payload, signature_header, now)
        signal = self.translate(event)
        if signal is None:
            return None  # not ours or not interesting: nothing to deduplicate
        if not self._store.claim(event["id"]):
            log.info("duplicate webhook ignored", extra={"event_id": event["id"]})
            return None
        return signal

    def release(self, event_id: str) -> None:
        """Call when the returned signal could not be produced, so a redelivery is accepted."""
        self._store.release(event_id)

    def translate(self, event: Mapping[str, Any]) -> RecordPaymentSignal | None:
        kind = event.get("type")
        obj = (event.get("data") or {}).get("object") or {}
        if kind == "charge.refunded":
            payment_id = obj.get("payment_intent")
            amount = int(obj.get("amount_refunded") or 0)
            signal = PaymentSignal.REFUNDED
            reason = None
        elif kind in _PI_SIGNALS:
            payment_id = obj.get("id")
            signal = _PI_SIGNALS[kind]
            amount = _pi_amount(obj, signal)
            error = obj.get("last_payment_error") or {}
            reason = (
                error.get("decline_code") or error.get("code")
                if signal == PaymentSignal.FAILED
                else obj.get("cancellation_reason")
            )
        else:
            return None
        if not isinstance(payment_id, str):
            return None
        checkout_id = (obj.get("metadata") or {}).get("checkout_id")
        if not checkout_id and self._resolve is not None:
            checkout_id = self._resolve(payment_id)
        if not checkout_id:
            return None  # a payment this engine did not create
        return RecordPaymentSignal(
            checkout_id=str(checkout_id),
            provider=self._provider,
            provider_event_id=str(event["id"]),
            signal=signal,
            payment_id=payment_id,
            amount=amount,
            currency=str(obj.get("currency") or ""),
            reason=str(reason) if reason else None,
        )


_PI_SIGNALS = {
    "payment_intent.amount_capturable_updated": PaymentSignal.AUTHORIZED,
    "payment_intent.succeeded": PaymentSignal.SUCCEEDED,
    "payment_intent.payment_failed": PaymentSignal.FAILED,
    "payment_intent.canceled": PaymentSignal.CANCELED,
}


def _pi_amount(obj: Mapping[str, Any], signal: PaymentSignal) -> int:
    if signal == PaymentSignal.AUTHORIZED:
        return int(obj.get("amount_capturable") or obj.get("amount") or 0)
    if signal == PaymentSignal.SUCCEEDED:
        return int(obj.get("amount_received") or obj.get("amount") or 0)
    return int(obj.get("amount") or 0)


def _timestamp(header: str) -> int:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise InvalidSignature("Stripe-Signature header has no timestamp")


def _matches(payload: bytes, header: str, secret: str) -> bool:
    try:
        # tolerance=None: the SDK would compare with the wall clock; `verify` checks `now`.
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
    except stripe.SignatureVerificationError:
        return False
    return True
