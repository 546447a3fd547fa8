"""Deterministic identifiers: replaying a saga must produce byte-identical commands."""

from __future__ import annotations

import uuid

from events.messages import Step

ORDER_NAMESPACE = uuid.UUID("6f1c8e52-3c1e-5b7a-9d2e-4a0b8c7d1e93")
"""Fixed namespace for order ids; changing it would renumber every future order."""


def idempotency_key(checkout_id: str, step: Step, attempt: int) -> str:
    """One key per (checkout, step, attempt): a retry is a new attempt and gets a new key, a
    redelivered command keeps its key, so adapters and providers deduplicate redeliveries."""
    return f"{checkout_id}:{step}:{attempt}"


def refund_key(checkout_id: str, refund_request_id: str, attempt: int) -> str:
    """Admin refunds: scoped by the request, so two refunds of one order are two operations to
    the provider and the refund ledger, while retries of one request still share its scope."""
    return f"{checkout_id}:{Step.REFUND_PAYMENT}:{refund_request_id}:{attempt}"


def order_id_for(checkout_id: str) -> str:
    return str(uuid.uuid5(ORDER_NAMESPACE, checkout_id))
