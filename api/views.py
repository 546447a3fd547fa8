"""Read-model records -> the public status document."""

from __future__ import annotations

import logging
from typing import get_args

from api.models import (
    Amounts,
    CheckoutStatus,
    CheckoutStatusName,
    Failure,
    LastEvent,
    NextAction,
    Projection,
    StepModel,
)
from api.ports import Accepted, CheckoutRecord, NextActionRecord

log = logging.getLogger(__name__)

_KNOWN: frozenset[str] = frozenset(get_args(CheckoutStatusName))


def _status(raw: str) -> CheckoutStatusName:
    value = str(raw).upper()
    if value in _KNOWN:
        return value  # type: ignore[return-value]
    # A status the API does not know yet (newer projector): still a live saga, say so honestly
    # rather than failing the request.
    log.warning("unknown checkout status from the projection: %r", raw)
    return "PENDING"


def accepted_status(accepted: Accepted) -> CheckoutStatus:
    """Accepted by the API, not (yet) in the read model: PENDING, and say the projection lags."""
    currency = str(accepted.request.get("currency", "")) if accepted.request else ""
    return CheckoutStatus(
        checkout_id=accepted.checkout_id,
        status="PENDING",
        amounts=None
        if not currency
        else Amounts(
            subtotal=_subtotal(accepted), tax=None, shipping=None, total=None, currency=currency
        ),
        order_id=None,
        failure=None,
        steps=[],
        projection=Projection(caught_up=False, last_event=None, events_applied=0),
    )


def _subtotal(accepted: Accepted) -> int | None:
    try:
        return sum(int(i["quantity"]) * int(i["unit_amount"]) for i in accepted.request["items"])
    except (KeyError, TypeError, ValueError):
        return None


def next_action(
    status: CheckoutStatusName, action: NextActionRecord | None, *, owner: bool
) -> NextAction | None:
    """The payment action, only while the saga waits on it. The client secret lets its holder
    confirm the payment, so only the owning tenant's storefront gets it; an operator sees which
    action is pending, not the secret."""
    if action is None or status != "AWAITING_PAYMENT_ACTION":
        return None
    return NextAction(
        provider=action.provider,
        kind=action.kind,
        client_secret=action.client_secret if owner else None,
        redirect_url=action.redirect_url,
    )


def checkout_status(record: CheckoutRecord, *, owner: bool = False) -> CheckoutStatus:
    """`owner`: the caller is the storefront of the checkout's tenant (the route has checked
    the tenant), the one caller that may receive a client secret."""
    status = _status(record.status)
    failure = None
    if record.failure_step or record.failure_reason:
        failure = Failure(step=record.failure_step, reason=record.failure_reason)
    last_event = None
    if record.last_event_id or record.last_event_type:
        last_event = LastEvent(
            id=record.last_event_id, type=record.last_event_type, at=record.last_event_at
        )
    return CheckoutStatus(
        checkout_id=record.checkout_id,
        status=status,
        amounts=Amounts(
            subtotal=record.subtotal,
            tax=record.tax,
            shipping=record.shipping,
            total=record.total,
            currency=record.currency,
        ),
        order_id=record.order_id,
        failure=failure,
        steps=[
            StepModel(
                step=s.step,
                status=s.status,
                attempts=s.attempts,
                started_at=s.started_at,
                finished_at=s.finished_at,
                last_error=s.last_error,
            )
            for s in record.steps
        ],
        projection=Projection(
            caught_up=True, last_event=last_event, events_applied=record.events_applied
        ),
        next_action=next_action(status, record.next_action, owner=owner),
    )
