"""Provider webhooks: the raw body (the signature covers the exact bytes) and its signature go to
the injected ingest, which verifies, deduplicates and hands the signal to the saga."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool

from adapters.payments.paypal_webhooks import HEADERS as PAYPAL_HEADERS
from adapters.payments.paypal_webhooks import signature_bundle
from adapters.payments.webhook_ingest import InvalidSignature, WebhookNotRecorded
from api.errors import ApiError
from api.models import WebhookAck, responses
from api.ports import BrokerUnavailable
from api.security import Deps

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "/stripe",
    response_model=WebhookAck,
    responses=responses(400, 413, 503),
    summary="Stripe event delivery (signature-checked; duplicates acknowledged)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def stripe_webhook(
    request: Request,
    deps: Deps,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookAck:
    payload = await request.body()
    if not stripe_signature:
        raise ApiError(400, "invalid_signature", "missing Stripe-Signature header")
    try:
        # Verification and the acknowledged produce block: keep them off the event loop.
        await run_in_threadpool(deps.webhook_ingest, payload, stripe_signature)
    except InvalidSignature as e:
        raise ApiError(400, "invalid_signature", str(e)) from e
    except (WebhookNotRecorded, BrokerUnavailable) as e:
        # Not acknowledged: Stripe retries on any non-2xx, and the dedup claim was released.
        raise ApiError(503, "broker_unavailable", "could not record the event; retry") from e
    return WebhookAck(received=True)


@router.post(
    "/paypal",
    response_model=WebhookAck,
    responses=responses(400, 404, 413, 503),
    summary="PayPal event delivery (PAYPAL-* signature headers checked; duplicates acknowledged)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def paypal_webhook(request: Request, deps: Deps) -> WebhookAck:
    ingest = deps.paypal_webhook_ingest
    if ingest is None:
        raise ApiError(404, "not_found", "PayPal webhooks are not configured")
    payload = await request.body()
    missing = [h for h in PAYPAL_HEADERS if not request.headers.get(h)]
    if missing:
        raise ApiError(400, "invalid_signature", f"missing {', '.join(missing)} header")
    bundle = signature_bundle({h: request.headers[h] for h in PAYPAL_HEADERS})
    try:
        await run_in_threadpool(ingest, payload, bundle)
    except InvalidSignature as e:
        raise ApiError(400, "invalid_signature", str(e)) from e
    except (WebhookNotRecorded, BrokerUnavailable) as e:
        # PayPal redelivers on any non-2xx (up to 25 times over 3 days); the claim was released.
        raise ApiError(503, "broker_unavailable", "could not record the event; retry") from e
    return WebhookAck(received=True)
