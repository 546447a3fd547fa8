"""Storefront checkout routes: create (idempotent), status, cancel. Thin: validate, build the
command, produce it (acknowledged), answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response

from api import commands
from api.errors import ApiError, not_found
from api.idempotency import check_key, fingerprint, run_once
from api.models import (
    CancelAccepted,
    CancelRequest,
    CheckoutAccepted,
    CheckoutRequest,
    CheckoutStatus,
    ValidationErrorBody,
    responses,
)
from api.ports import Accepted, BrokerUnavailable
from api.security import Caller, Deps, Writer
from api.views import accepted_status, checkout_status

router = APIRouter(prefix="/v1", tags=["checkouts"])

CheckoutId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="required: 1-255 visible ASCII characters, unique per checkout attempt;"
        " retries reuse it (400 without)",
    ),
]


def broker_unavailable() -> ApiError:
    return ApiError(
        503,
        "broker_unavailable",
        "the request could not be stored; retry with the same Idempotency-Key",
        headers={"Retry-After": "1"},
    )


@router.post(
    "/checkouts",
    status_code=202,
    response_model=CheckoutAccepted,
    responses=responses(400, 401, 403, 409, 413, 429, 503, s422=ValidationErrorBody),
    summary="Start a checkout",
)
def create_checkout(
    body: CheckoutRequest,
    request: Request,
    response: Response,
    caller: Writer,
    deps: Deps,
    idempotency_key: IdempotencyKey = None,
) -> CheckoutAccepted:
    caller.require("storefront")
    key = check_key(idempotency_key)
    tenant = caller.tenant_id
    assert tenant is not None  # storefront principals always carry their tenant
    canonical = body.model_dump(mode="json")
    fp = fingerprint(f"tenant:{tenant}", canonical)
    metrics = request.app.state.metrics

    def accept() -> dict[str, Any]:
        checkout_id = commands.checkout_id_for(tenant, key, fp)
        now = deps.now_ms()
        # Recorded before producing: once the broker acknowledges, GET must already know it.
        deps.accepted.record(Accepted(checkout_id, tenant, now, canonical))
        envelope = commands.start_checkout(
            body, checkout_id=checkout_id, tenant_id=tenant, now_ms=now
        )
        deps.bus.send(envelope)
        return {
            "checkout_id": checkout_id,
            "status": "PENDING",
            "status_url": f"/v1/checkouts/{checkout_id}",
        }

    try:
        outcome = run_once(
            deps.idempotency,
            f"checkout:{tenant}",
            key,
            fp,
            accept,
            wait_s=deps.idempotency_wait_s,
        )
    except BrokerUnavailable as e:
        metrics.checkouts.labels("broker_unavailable").inc()
        raise broker_unavailable() from e
    except ApiError as e:
        metrics.checkouts.labels(
            "conflict" if e.error == "idempotency_key_reused" else "in_progress"
        ).inc()
        raise
    metrics.checkouts.labels("replayed" if outcome.replayed else "accepted").inc()
    result = CheckoutAccepted.model_validate(outcome.result)
    response.headers["Location"] = result.status_url
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result


@router.get(
    "/checkouts/{checkout_id}",
    response_model=CheckoutStatus,
    responses=responses(401, 403, 404, 429, s422=ValidationErrorBody),
    summary="A checkout's status, amounts, step timeline and pending payment action",
)
def get_checkout(checkout_id: CheckoutId, caller: Caller, deps: Deps) -> CheckoutStatus:
    caller.require("storefront", "operator", "admin")
    record = deps.reads.checkout(checkout_id)
    accepted = deps.accepted.get(checkout_id)
    tenant = (record.tenant_id if record else None) or (accepted.tenant_id if accepted else None)
    # A checkout of another tenant is "not found", never "forbidden": ids leak nothing.
    if (record is None and accepted is None) or not caller.may_see(tenant):
        raise not_found("checkout")
    if record is None:
        assert accepted is not None
        return accepted_status(accepted)
    # may_see has matched a storefront's tenant to the checkout's: it is the owner.
    return checkout_status(record, owner=caller.role == "storefront")


@router.post(
    "/checkouts/{checkout_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    responses=responses(400, 401, 403, 404, 413, 429, 503, s422=ValidationErrorBody),
    summary="Ask the saga to cancel (it compensates, or refuses once capture has begun)",
)
def cancel_checkout(
    checkout_id: CheckoutId,
    request: Request,
    caller: Writer,
    deps: Deps,
    body: CancelRequest | None = None,
) -> CancelAccepted:
    caller.require("storefront", "operator", "admin")
    record = deps.reads.checkout(checkout_id)
    accepted = deps.accepted.get(checkout_id)
    tenant = (record.tenant_id if record else None) or (accepted.tenant_id if accepted else None)
    if (record is None and accepted is None) or not caller.may_see(tenant):
        raise not_found("checkout")
    reason = (body.reason if body else "") or f"cancelled by {caller.role}"
    if caller.role != "storefront":
        # Operators acting on a customer's checkout are audited, before the command is sent:
        # an action may fail after its audit row, never happen without one.
        deps.audit.record(
            actor=caller.actor,
            action="checkout.cancel",
            object=f"checkout:{checkout_id}",
            before={"status": record.status if record else "PENDING"},
            after={"requested": "cancel", "reason": reason},
            request_id=request.state.request_id,
        )
    try:
        deps.bus.send(commands.cancel_checkout(checkout_id, reason, now_ms=deps.now_ms()))
    except BrokerUnavailable as e:
        raise broker_unavailable() from e
    return CancelAccepted(
        checkout_id=checkout_id,
        status="CANCEL_REQUESTED",
        status_url=f"/v1/checkouts/{checkout_id}",
    )
