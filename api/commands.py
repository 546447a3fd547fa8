"""Validated HTTP bodies -> saga commands in envelopes, with the ids derived deterministically
where a retry must produce the very same message (see docs/decisions/0008-api.md)."""

from __future__ import annotations

import uuid

from api.models import CheckoutRequest
from events import messages as m
from events.envelope import Envelope

PRODUCER = "api"
# Fixed namespace: ids derived from it are stable across processes, replicas and releases.
_NS = uuid.UUID("6f1d3c52-8a0e-4d4b-9f53-3b0c1e7a9d21")


def checkout_id_for(tenant_id: str, idempotency_key: str, fingerprint: str) -> str:
    """A checkout id that a retried request (same tenant, key and body) gets again, even when the
    first attempt died after producing and before remembering its result."""
    return "co_" + uuid.uuid5(_NS, f"checkout\n{tenant_id}\n{idempotency_key}\n{fingerprint}").hex


def refund_request_id_for(order_id: str, idempotency_key: str) -> str:
    return "rr_" + uuid.uuid5(_NS, f"refund\n{order_id}\n{idempotency_key}").hex


def start_checkout(
    body: CheckoutRequest, *, checkout_id: str, tenant_id: str, now_ms: int
) -> Envelope[m.StartCheckout]:
    command = m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id=tenant_id,
        customer_id=body.customer.id,
        customer_email=body.customer.email,
        currency=body.currency,
        items=tuple(m.LineItem(i.sku, i.quantity, i.unit_amount) for i in body.items),
        shipping_address=m.Address(
            line1=body.shipping_address.line1,
            city=body.shipping_address.city,
            state=body.shipping_address.state,
            postal_code=body.shipping_address.postal_code,
            country=body.shipping_address.country,
        ),
        payment_provider=body.payment.provider,
        payment_method=body.payment.payment_method,
    )
    # Deterministic message id: a re-produce after a lost ack is the same message to consumers.
    message_id = str(uuid.uuid5(_NS, f"start\n{checkout_id}"))
    return Envelope.new(command, occurred_at=now_ms, producer=PRODUCER, message_id=message_id)


def cancel_checkout(checkout_id: str, reason: str, *, now_ms: int) -> Envelope[m.CancelCheckout]:
    return Envelope.new(
        m.CancelCheckout(checkout_id=checkout_id, reason=reason),
        occurred_at=now_ms,
        producer=PRODUCER,
    )


def request_refund(
    *,
    checkout_id: str,
    refund_request_id: str,
    amount: int,
    currency: str,
    reason: str,
    now_ms: int,
) -> Envelope[m.RequestRefund]:
    command = m.RequestRefund(
        checkout_id=checkout_id,
        refund_request_id=refund_request_id,
        amount=amount,
        currency=currency,
        reason=reason,
    )
    message_id = str(uuid.uuid5(_NS, f"refund\n{refund_request_id}"))
    return Envelope.new(command, occurred_at=now_ms, producer=PRODUCER, message_id=message_id)
