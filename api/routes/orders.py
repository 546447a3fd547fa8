"""Admin refunds. The API checks the amount against the orders projection for a fast, clear 422;
the saga makes the final, authoritative check (the projection may lag a concurrent refund)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from api import commands
from api.errors import ApiError, not_found
from api.idempotency import check_key, fingerprint, run_once
from api.models import OverRefundBody, RefundAccepted, RefundRequest, ValidationErrorBody, responses
from api.ports import BrokerUnavailable
from api.routes.checkouts import IdempotencyKey, broker_unavailable
from api.security import Deps, Writer

router = APIRouter(prefix="/v1", tags=["orders"])

OrderId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.post(
    "/orders/{order_id}/refunds",
    status_code=202,
    response_model=RefundAccepted,
    responses={
        **responses(400, 401, 403, 404, 409, 413, 429, 503),
        422: {
            "model": OverRefundBody | ValidationErrorBody,
            "description": "over-refund (with refundable_amount) or an invalid body",
        },
    },
    summary="Refund (part of) a completed order — admin only",
)
def refund_order(
    order_id: OrderId,
    body: RefundRequest,
    request: Request,
    caller: Writer,
    deps: Deps,
    idempotency_key: IdempotencyKey = None,
) -> RefundAccepted:
    caller.require("admin")
    key = check_key(idempotency_key)
    order = deps.reads.order(order_id)
    if order is None:
        raise not_found("order")
    if body.amount > order.refundable:
        raise ApiError(
            422,
            "over_refund",
            f"amount {body.amount} exceeds the refundable {order.refundable} {order.currency}",
            extra={"refundable_amount": order.refundable},
        )
    refund_request_id = commands.refund_request_id_for(order_id, key)
    fp = fingerprint(f"order:{order_id}", body.model_dump(mode="json"))
    result_of = {
        "order_id": order_id,
        "checkout_id": order.checkout_id,
        "refund_request_id": refund_request_id,
        "amount": body.amount,
        "currency": order.currency,
        "status": "REFUND_REQUESTED",
    }

    def request_refund() -> dict[str, Any]:
        # Audited before the command is sent: never a refund without its audit row.
        deps.audit.record(
            actor=caller.actor,
            action="order.refund",
            object=f"order:{order_id}",
            before={
                "captured": order.captured,
                "refunded": order.refunded,
                "refundable": order.refundable,
                "currency": order.currency,
            },
            after={
                "refund_request_id": refund_request_id,
                "amount": body.amount,
                "reason": body.reason,
            },
            request_id=request.state.request_id,
        )
        deps.bus.send(
            commands.request_refund(
                checkout_id=order.checkout_id,
                refund_request_id=refund_request_id,
                amount=body.amount,
                currency=order.currency,
                reason=body.reason or "admin refund",
                now_ms=deps.now_ms(),
            )
        )
        return result_of

    try:
        outcome = run_once(
            deps.idempotency,
            f"refund:{order_id}",
            key,
            fp,
            request_refund,
            wait_s=deps.idempotency_wait_s,
        )
    except BrokerUnavailable as e:
        raise broker_unavailable() from e
    return RefundAccepted.model_validate(outcome.result)
