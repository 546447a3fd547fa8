"""Provider webhooks: the raw body (the signature covers the exact bytes) and its signature go to
the injected ingest, which verifies, deduplicates and hands the signal to the saga."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool

from adapters.payments.paypal_webhooks import HEADERS as PAYPAL_HEADERS
from adapters.payments.webhook_ingest import InvalidSignature, WebhookNotRecorded
from api.errors import ApiError
from api.models import WebhookAck, responses
from api.ports import BrokerUnavailable, ProviderWebhook
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
    request.app.state.metrics.webhook_received("stripe", payload, time.time())
    return WebhookAck(received=True)


@router.post(
    "/razorpay",
    response_model=WebhookAck,
    responses=responses(400, 404, 413, 503),
    summary="Razorpay event delivery (X-Razorpay-Signature checked; duplicates acknowledged)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def razorpay_webhook(request: Request, deps: Deps) -> WebhookAck:
    ingest = deps.provider_webhooks.get("razorpay")
    if ingest is None:
        raise ApiError(404, "not_configured", "Razorpay webhooks are not configured here")
    payload = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not headers.get("x-razorpay-signature"):
        raise ApiError(400, "invalid_signature", "missing X-Razorpay-Signature header")
    await _ingest(ingest, payload, headers)
    request.app.state.metrics.webhook_received("razorpay", payload, time.time())
    return WebhookAck(received=True)


async def _ingest(ingest: ProviderWebhook, payload: bytes, headers: dict[str, str]) -> None:
    try:
        await run_in_threadpool(ingest, payload, headers)
    except InvalidSignature as e:
        raise ApiError(400, "invalid_signature", str(e)) from e
    except (WebhookNotRecorded, BrokerUnavailable) as e:
        # Not acknowledged: the provider redelivers on any non-2xx; the dedup claim was released.
        raise ApiError(503, "broker_unavailable", "could not record the event; retry") from e


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
    ingest = deps.provider_webhooks.get("paypal")
    if ingest is None:
        raise ApiError(404, "not_configured", "PayPal webhooks are not configured here")
    payload = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    missing = [h for h in PAYPAL_HEADERS if not headers.get(h.lower())]
    if missing:
        raise ApiError(400, "invalid_signature", f"missing {', '.join(missing)} header")
    # PayPal redelivers on any non-2xx (up to 25 times over 3 days).
    await _ingest(ingest, payload, headers)
    request.app.state.metrics.webhook_received("paypal", payload, time.time())
    return WebhookAck(received=True)
