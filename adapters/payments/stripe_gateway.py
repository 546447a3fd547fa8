"""Stripe PaymentIntents (manual capture) on the official SDK, one `StripeClient` per gateway.

No global `stripe.api_key`/`api_base`: several tenants' keys may live in one process. The SDK's own
network retries are off (`max_network_retries=0`): our gateway decides when a create is re-sent
under its key (adapters/payments/keyed.py), and the saga owns retries. Authorization reads our
attempt log and never lists the account; `find_by_checkout` (a full listing, or Search) is for
operators and reconciliation only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import stripe

from adapters.payments.attempt_log import AttemptLog
from adapters.payments.keyed import KeyedReconcilingGateway
from adapters.payments.port import (
    ActionRequired,
    AuthorizationRequest,
    AuthorizationResult,
    Authorized,
    Captured,
    CaptureRequest,
    Declined,
    PaymentError,
    PaymentNotFoundError,
    PaymentSnapshot,
    PaymentStatus,
    PermanentPaymentError,
    Refunded,
    RefundRecord,
    RefundRequest,
    ReplayedFailureError,
    RetryablePaymentError,
    UnknownOutcomeError,
    Voided,
    VoidRequest,
)

log = logging.getLogger(__name__)

_STATUS = {
    "requires_payment_method": PaymentStatus.REQUIRES_PAYMENT_METHOD,
    "requires_confirmation": PaymentStatus.REQUIRES_CONFIRMATION,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.CAPTURED,
    "canceled": PaymentStatus.CANCELED,
}

# Stripe decline codes after which trying the same card again later can succeed.
_RETRYABLE_DECLINES = frozenset({"processing_error", "try_again_later", "issuer_not_available"})


class StripeGateway(KeyedReconcilingGateway):
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout_s: float = 10.0,
        http_client: stripe.HTTPClient | None = None,
        use_search_api: bool = False,
        provider_name: str = "stripe",
        attempts: AttemptLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(attempts, clock=clock)
        base = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,
            http_client=http_client or stripe.RequestsClient(timeout=timeout_s),
        )
        # `find_by_checkout` (operators, reconciliation; never on the authorize path): real
        # Stripe's Search API (eventually consistent, ~1 min) finds by metadata; localstripe has
        # no Search, so we page through the list and filter client-side.
        self._use_search_api = use_search_api
        self._provider = provider_name

    def __repr__(self) -> str:  # never show the key
        return f"StripeGateway(provider={self._provider!r})"

    @property
    def provider(self) -> str:
        return self._provider

    # --- raw calls -------------------------------------------------------------------------

    def _create_authorization(self, request: AuthorizationRequest) -> AuthorizationResult:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "payment_method": request.payment_method,
            "payment_method_types": ["card"],
            "capture_method": "manual",
            "confirm": True,
            "metadata": {
                "checkout_id": request.checkout_id,
                "attempt": str(request.attempt),
                "idempotency_key": request.idempotency_key,
                "customer_ref": request.customer_id,
            },
        }
        try:
            pi = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.CardError as e:
            return _declined(e)
        except stripe.StripeError as e:
            raise _translate(e, mutating=True, what="create payment intent") from e
        data = pi.to_dict()
        status = _STATUS.get(data["status"])
        if status == PaymentStatus.AUTHORIZED:
            return Authorized(
                payment_id=data["id"], amount=data["amount"], currency=data["currency"]
            )
        if status == PaymentStatus.REQUIRES_ACTION:
            return ActionRequired(
                payment_id=data["id"],
                action_url=_action_url(data),
                kind=_action_kind(data),
                client_secret=_client_secret(data),
            )
        if status == PaymentStatus.REQUIRES_PAYMENT_METHOD:
            code = _decline_code(data)
            return Declined(
                reason="declined",
                decline_code=code,
                payment_id=data["id"],
                retryable=code in _RETRYABLE_DECLINES,
            )
        if status == PaymentStatus.PROCESSING:
            raise RetryablePaymentError(f"payment {data['id']} is processing")
        raise PermanentPaymentError(f"payment {data['id']} in unexpected status {data['status']}")

    def _capture(self, request: CaptureRequest) -> Captured:
        try:
            pi = self._client.v1.payment_intents.capture(
                request.payment_id,
                params={"amount_to_capture": request.amount},
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.StripeError as e:
            raise _translate(e, mutating=True, what="capture") from e
        snap = _snapshot(pi.to_dict(), ())
        if snap.status != PaymentStatus.CAPTURED:
            raise UnknownOutcomeError(f"capture of {snap.payment_id} left it {snap.status}")
        return Captured(
            payment_id=snap.payment_id, amount=snap.amount_captured, currency=snap.currency
        )

    def _cancel(self, request: VoidRequest) -> Voided:
        try:
            pi = self._client.v1.payment_intents.cancel(
                request.payment_id, options={"idempotency_key": request.idempotency_key}
            )
        except stripe.StripeError as e:
            raise _translate(e, mutating=True, what="cancel") from e
        return Voided(payment_id=pi.id)

    def _create_refund(self, request: RefundRequest) -> Refunded:
        try:
            refund = self._client.v1.refunds.create(
                params={
                    "payment_intent": request.payment_id,
                    "amount": request.amount,
                    "metadata": {
                        "checkout_id": request.checkout_id,
                        "attempt": str(request.attempt),
                        "idempotency_key": request.idempotency_key,
                    },
                },
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.StripeError as e:
            raise _translate(e, mutating=True, what="refund") from e
        data = refund.to_dict()
        return Refunded(
            payment_id=request.payment_id,
            refund_id=data["id"],
            amount=data["amount"],
            currency=data["currency"],
        )

    # --- reads -----------------------------------------------------------------------------

    def _pending_action(self, payment_id: str) -> ActionRequired:
        try:
            data = self._client.v1.payment_intents.retrieve(payment_id).to_dict()
        except stripe.StripeError as e:
            raise _translate(e, mutating=False, what="retrieve payment intent") from e
        return ActionRequired(
            payment_id=payment_id,
            action_url=_action_url(data),
            kind=_action_kind(data),
            client_secret=_client_secret(data),
        )

    def retrieve(self, payment_id: str) -> PaymentSnapshot:
        try:
            pi = self._client.v1.payment_intents.retrieve(
                payment_id, params={"expand": ["latest_charge"]}
            ).to_dict()
            records: tuple[RefundRecord, ...] = ()
            # Only a charged payment can have refunds (localstripe answers 500 otherwise).
            if pi.get("latest_charge"):
                refunds = self._client.v1.refunds.list(
                    params={"payment_intent": payment_id, "limit": 100}
                )
                records = tuple(_refund_record(r.to_dict()) for r in refunds.auto_paging_iter())
        except stripe.StripeError as e:
            raise _translate(e, mutating=False, what="retrieve") from e
        return _snapshot(pi, records)

    def _peek(self, payment_id: str) -> PaymentSnapshot:
        # Deciding an authorization needs status, amount and currency: one GET, no refunds.
        try:
            pi = self._client.v1.payment_intents.retrieve(payment_id).to_dict()
        except stripe.StripeError as e:
            raise _translate(e, mutating=False, what="retrieve payment intent") from e
        return _snapshot(pi, ())

    def _decline_retryable(self, decline_code: str | None) -> bool:
        return decline_code in _RETRYABLE_DECLINES

    def _find_created_between(
        self, checkout_id: str, start: int, end: int
    ) -> list[PaymentSnapshot]:
        # The List API is strongly consistent (Search is not), and `created` bounds it to the
        # payments made while one attempt was in flight, not the account's history.
        try:
            listing = self._client.v1.payment_intents.list(
                params={"limit": 100, "created": {"gte": start, "lte": end}}
            )
            items = [
                d
                for d in (pi.to_dict() for pi in listing.auto_paging_iter())
                if (d.get("metadata") or {}).get("checkout_id") == checkout_id
            ]
        except stripe.StripeError as e:
            raise _translate(e, mutating=False, what="list payments") from e
        snaps = [_snapshot(d, ()) for d in items]
        return sorted(snaps, key=lambda s: (s.created, s.payment_id))

    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]:
        try:
            if self._use_search_api:
                found = self._client.v1.payment_intents.search(
                    params={"query": f"metadata['checkout_id']:'{_quote(checkout_id)}'"}
                )
                items = [pi.to_dict() for pi in found.auto_paging_iter()]
            else:
                listing = self._client.v1.payment_intents.list(params={"limit": 100})
                items = [
                    d
                    for d in (pi.to_dict() for pi in listing.auto_paging_iter())
                    if (d.get("metadata") or {}).get("checkout_id") == checkout_id
                ]
        except stripe.StripeError as e:
            raise _translate(e, mutating=False, what="find payments") from e
        snaps = [_snapshot(d, ()) for d in items]
        return sorted(snaps, key=lambda s: (s.created, s.payment_id))


# --- mapping helpers ---------------------------------------------------------------------------


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _action_url(pi: Mapping[str, Any]) -> str | None:
    action = pi.get("next_action") or {}
    redirect = action.get("redirect_to_url") or {}
    url = redirect.get("url")
    return url if isinstance(url, str) else None


def _action_kind(pi: Mapping[str, Any]) -> str | None:
    kind = (pi.get("next_action") or {}).get("type")
    return kind if isinstance(kind, str) else None


def _client_secret(pi: Mapping[str, Any]) -> str | None:
    secret = pi.get("client_secret")
    return secret if isinstance(secret, str) and secret else None


def _decline_code(pi: Mapping[str, Any]) -> str | None:
    err = pi.get("last_payment_error") or {}
    code = err.get("decline_code") or err.get("code")
    return code if isinstance(code, str) else None


def _declined(e: stripe.CardError) -> Declined:
    err = e.error
    # Stripe sets decline_code (insufficient_funds, ...) with code=card_declined; localstripe
    # sets only code. Prefer the specific one.
    code = (getattr(err, "decline_code", None) if err else None) or e.code
    pi = getattr(err, "payment_intent", None) if err else None
    payment_id = pi.get("id") if isinstance(pi, Mapping) else None
    return Declined(
        reason=e.user_message or "card declined",
        decline_code=code,
        payment_id=payment_id,
        retryable=code in _RETRYABLE_DECLINES,
    )


def _refund_record(data: Mapping[str, Any]) -> RefundRecord:
    metadata = data.get("metadata") or {}
    return RefundRecord(
        refund_id=data["id"],
        amount=int(data["amount"]),
        idempotency_key=metadata.get("idempotency_key"),
        status=str(data.get("status")),
    )


def _snapshot(pi: Mapping[str, Any], refunds: tuple[RefundRecord, ...]) -> PaymentSnapshot:
    status = _STATUS.get(pi["status"], PaymentStatus.PROCESSING)
    charge = pi.get("latest_charge")
    charge = charge if isinstance(charge, Mapping) else {}
    amount = int(pi["amount"])
    if status == PaymentStatus.CAPTURED:
        # Real Stripe reports amount_received; localstripe does not, and on a partial capture
        # it records the released remainder as a refund, so its charge.amount - amount_refunded
        # is what stays refundable. Either way: captured - refunded == refundable.
        captured = int(
            pi.get("amount_received")
            or charge.get("amount_captured")
            or charge.get("amount")
            or amount
        )
        refunded = int(charge.get("amount_refunded") or 0)
        if not charge:
            refunded = sum(r.amount for r in refunds if r.status in ("succeeded", "pending"))
    else:
        captured, refunded = 0, 0
    capturable = int(
        pi.get("amount_capturable") or (amount if status == PaymentStatus.AUTHORIZED else 0)
    )
    metadata = pi.get("metadata") or {}
    return PaymentSnapshot(
        payment_id=pi["id"],
        checkout_id=metadata.get("checkout_id"),
        idempotency_key=metadata.get("idempotency_key"),
        status=status,
        amount=amount,
        currency=str(pi["currency"]),
        amount_capturable=capturable,
        amount_captured=captured,
        amount_refunded=refunded,
        decline_code=_decline_code(pi),
        refunds=refunds,
        created=int(pi.get("created") or 0),
    )


def _request_never_sent(e: stripe.APIConnectionError) -> bool:
    """True when the connection failed before the request could reach Stripe."""
    cause = e.__cause__
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError) and not isinstance(
        cause, requests.exceptions.ReadTimeout
    ):
        text = str(cause)
        return "NewConnectionError" in text or "Connection refused" in text
    return False


def _replayed(e: stripe.StripeError) -> bool:
    """Stripe replayed the answer it saved for this idempotency key."""
    headers = e.headers or {}
    return any(
        k.lower() == "idempotent-replayed" and str(v).lower() == "true" for k, v in headers.items()
    )


def _translate(e: stripe.StripeError, *, mutating: bool, what: str) -> PaymentError:
    """Vendor error -> our error family. Messages carry Stripe's text, never request bodies."""
    status = e.http_status
    msg = f"stripe {what}: {type(e).__name__} ({status}): {e.user_message or e.code or ''}"
    # Stripe's own code when it answered (api_error, rate_limit, resource_missing...); for no
    # answer at all, what kind of failure it was.
    code = e.code or (e.error.code if e.error else None)
    if code is None and isinstance(e, stripe.APIConnectionError):
        code = "connection_error"

    def err(kind: type[PaymentError]) -> PaymentError:
        return kind(msg, http_status=status, code=code)

    if isinstance(e, stripe.IdempotencyError):
        code = "idempotency_error"
        # 409: a request with this key is still executing; once it ends, the key replays it.
        # 400: the key was first used with other parameters, which retrying cannot change.
        return err(RetryablePaymentError if status == 409 else PermanentPaymentError)
    if isinstance(e, stripe.APIConnectionError):
        if not mutating or _request_never_sent(e):
            return err(RetryablePaymentError)
        return err(UnknownOutcomeError)
    if isinstance(e, stripe.RateLimitError) or status == 429:
        return err(RetryablePaymentError)
    if status == 409 and not isinstance(e, stripe.IdempotencyError):
        # lock_timeout: concurrent request on the object
        return err(RetryablePaymentError)
    if isinstance(e, stripe.APIError) or (status is not None and status >= 500):
        # A 5xx after a write is indeterminate per Stripe's docs: it may have been applied.
        if mutating:
            return err(ReplayedFailureError if _replayed(e) else UnknownOutcomeError)
        return err(RetryablePaymentError)
    if status == 404:
        return err(PaymentNotFoundError)
    return err(PermanentPaymentError)
