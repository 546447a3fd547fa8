"""The adapter command for one attempt of one step, built from the saga's state."""

from __future__ import annotations

from events import messages as m
from events.messages import AdapterCommand, Step
from saga.ids import idempotency_key, refund_key
from saga.policy import Policy
from saga.state import CompensationTask, SagaState


def forward_command(
    state: SagaState, step: Step, attempt: int, now: int, policy: Policy
) -> AdapterCommand:
    order = state.order
    cid, key = state.checkout_id, idempotency_key(state.checkout_id, step, attempt)
    match step:
        case Step.RESERVE_INVENTORY:
            return m.ReserveInventory(
                cid, attempt, key, order.items, expires_at=now + policy.reservation_ttl_ms
            )
        case Step.CALCULATE_TAX:
            return m.CalculateTax(
                cid, attempt, key, order.currency, order.items, order.shipping_address
            )
        case Step.QUOTE_SHIPPING:
            return m.QuoteShipping(
                cid, attempt, key, order.currency, order.items, order.shipping_address
            )
        case Step.AUTHORIZE_PAYMENT:
            return m.AuthorizePayment(
                cid,
                attempt,
                key,
                order.payment_provider,
                order.payment_method,
                order.customer_id,
                _total(state),
                order.currency,
                # The registry routes by tenant and by the country the goods ship to.
                tenant_id=order.tenant_id,
                country=order.shipping_address.country,
            )
        case Step.COMMIT_INVENTORY:
            return m.CommitInventory(cid, attempt, key, _required(state.reservation_id))
        case Step.CAPTURE_PAYMENT:
            return m.CapturePayment(
                cid,
                attempt,
                key,
                provider_of(state, state.payment_id),
                _required(state.payment_id),
                _total(state),
                order.currency,
            )
    raise ValueError(f"{step} is not a forward step")


def compensation_command(state: SagaState, task: CompensationTask, attempt: int) -> AdapterCommand:
    cid, key = state.checkout_id, idempotency_key(state.checkout_id, task.step, attempt)
    provider = provider_of(state, task.target)
    match task.step:
        case Step.RELEASE_INVENTORY:
            return m.ReleaseInventory(cid, attempt, key, task.target)
        case Step.VOID_PAYMENT:
            return m.VoidPayment(cid, attempt, key, provider, task.target)
        case Step.REFUND_PAYMENT:
            if task.refund_request_id is not None:
                key = refund_key(cid, task.refund_request_id, attempt)
            return m.RefundPayment(
                cid, attempt, key, provider, task.target, task.amount, state.currency
            )
    raise ValueError(f"{task.step} is not a compensation step")


def provider_of(state: SagaState, payment_id: str | None) -> str:
    """The provider holding `payment_id`, as its authorization reply named it: the payment
    registry may have routed the authorization to another provider than the storefront asked
    for (a fallback while the primary is down), and a payment exists at one provider only."""
    payment = state.payment(payment_id)
    if payment is not None and payment.provider:
        return payment.provider
    return state.order.payment_provider


def _total(state: SagaState) -> int:
    if state.total is None:
        raise ValueError("payment before tax and shipping are known")
    return state.total


def _required(value: str | None) -> str:
    if value is None:
        raise ValueError("command needs an id the saga does not have yet")
    return value
