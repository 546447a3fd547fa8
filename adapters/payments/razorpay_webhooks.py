"""Razorpay webhooks -> `RecordPaymentSignal`: verified, deduplicated, normalised.

Razorpay signs the raw body: `X-Razorpay-Signature` = hex HMAC-SHA256(body, webhook secret).
Unlike Stripe the signature covers no timestamp, so a captured request stays validly signed
forever; replays are stopped by (a) dedup on the event id (`X-Razorpay-Event-Id`; a digest of the
body when the header is missing: Razorpay redelivers the same body) for longer than Razorpay
retries, and (b) refusing events whose `created_at` is older than that dedup window, so a replay
after the dedup entry expired is rejected rather than applied.

Events turned into saga signals: `payment.authorized` (e.g. 3-D Secure completed),
`payment.failed`, `payment.captured`, `refund.processed`. The checkout id comes from the
payment's notes (set by `RazorpayGateway`); a payment we did not create is ignored.

Same interface as `StripeWebhookHandler` (`handle_webhook`/`release`), so `WebhookIngest` serves
both providers; the endpoint passes the `X-Razorpay-Signature` header as `signature_header`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.payments.webhooks import InvalidSignature, WebhookEventStore
from events.messages import PaymentSignal, RecordPaymentSignal

log = logging.getLogger(__name__)

# Razorpay retries a failed webhook for 24 hours; keep dedup entries well beyond that.
DEDUP_TTL_S = 3 * 24 * 3600
# Events older than this are refused: the dedup entry of a genuine delivery may be gone.
MAX_EVENT_AGE_S = DEDUP_TTL_S - 3600
# Clock skew we accept for an event stamped in the future.
FUTURE_SKEW_S = 300

_SIGNALS = {
    "payment.authorized": PaymentSignal.AUTHORIZED,
    "payment.failed": PaymentSignal.FAILED,
    "payment.captured": PaymentSignal.SUCCEEDED,
    "refund.processed": PaymentSignal.REFUNDED,
}


def sign(payload: bytes, secret: str) -> str:
    """What Razorpay sends as `X-Razorpay-Signature` (tests and the contract peer use it)."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


class RazorpayWebhookHandler:
    def __init__(
        self,
        secrets: Sequence[str],
        store: WebhookEventStore,
        *,
        provider: str = "razorpay",
        max_age_s: int = MAX_EVENT_AGE_S,
    ) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        # Several secrets while one is rotated: Razorpay signs with the one configured, and the
        # dashboard change and our deploy do not happen at the same instant.
        self._secrets = tuple(secrets)
        self._store = store
        self._provider = provider
        self._max_age = max_age_s

    def __repr__(self) -> str:  # never show the secrets
        return (
            f"RazorpayWebhookHandler(provider={self._provider!r}, secrets=<{len(self._secrets)}>)"
        )

    def verify(self, payload: bytes, signature_header: str, now: int) -> Mapping[str, Any]:
        given = signature_header.strip().lower()
        if not given or not any(
            hmac.compare_digest(sign(payload, secret), given) for secret in self._secrets
        ):
            raise InvalidSignature("X-Razorpay-Signature does not match a configured secret")
        try:
            event = json.loads(payload)
        except ValueError as e:
            raise InvalidSignature("signed payload is not JSON") from e
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise InvalidSignature("signed payload is not an event")
        created = event.get("created_at")
        if not isinstance(created, int) or isinstance(created, bool):
            raise InvalidSignature("event has no created_at")
        if now - created > self._max_age or created - now > FUTURE_SKEW_S:
            # Signed but stale: a replay from outside the dedup window (or a broken clock).
            raise InvalidSignature(f"event created_at {created} outside the accepted window")
        return event

    def handle_webhook(
        self, payload: bytes, signature_header: str, now: int, event_id: str | None = None
    ) -> RecordPaymentSignal | None:
        event = self.verify(payload, signature_header, now)
        dedup_id = event_id or "sha256:" + hashlib.sha256(payload).hexdigest()
        signal = self.translate(event, dedup_id)
        if signal is None:
            return None  # not ours or not interesting: nothing to deduplicate
        if not self._store.claim(dedup_id):
            log.info("duplicate webhook ignored", extra={"event_id": dedup_id})
            return None
        return signal

    def release(self, event_id: str) -> None:
        """Call when the returned signal could not be produced, so a redelivery is accepted."""
        self._store.release(event_id)

    def translate(self, event: Mapping[str, Any], event_id: str) -> RecordPaymentSignal | None:
        signal = _SIGNALS.get(str(event.get("event")))
        if signal is None:
            return None
        payload = event.get("payload") or {}
        payment = _entity(payload, "payment")
        refund = _entity(payload, "refund")
        payment_id = payment.get("id") or refund.get("payment_id")
        if not isinstance(payment_id, str):
            return None
        checkout_id = _notes(payment).get("checkout_id") or _notes(refund).get("checkout_id")
        if not checkout_id:
            return None  # a payment this engine did not create
        if signal == PaymentSignal.REFUNDED:
            # Like Stripe's charge.refunded: the payment's total refunded so far.
            amount = int(payment.get("amount_refunded") or refund.get("amount") or 0)
            reason = None
        else:
            amount = int(payment.get("amount") or 0)
            reason = payment.get("error_reason") or payment.get("error_code")
        return RecordPaymentSignal(
            checkout_id=checkout_id,
            provider=self._provider,
            provider_event_id=event_id,
            signal=signal,
            payment_id=payment_id,
            amount=amount,
            currency=str(payment.get("currency") or refund.get("currency") or ""),
            reason=str(reason) if reason and signal == PaymentSignal.FAILED else None,
        )


def _entity(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    wrapper = payload.get(name) or {}
    entity = wrapper.get("entity") if isinstance(wrapper, Mapping) else None
    return entity if isinstance(entity, Mapping) else {}


def _notes(entity: Mapping[str, Any]) -> dict[str, str]:
    notes = entity.get("notes")  # [] when empty
    return {str(k): str(v) for k, v in notes.items()} if isinstance(notes, Mapping) else {}
