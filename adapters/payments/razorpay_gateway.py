"""Razorpay (orders -> payments, manual capture) on its documented HTTP API, with httpx.

The flow per authorization:

1. an **order** for the checkout: `POST /v1/orders {amount, currency, receipt, notes,
   payment_capture: 0}` (manual capture). The receipt is derived from the checkout id, so the
   order can be found again with `GET /v1/orders?receipt=...`; an existing, unpaid order of
   the same amount is reused (orders accept several payment attempts);
2. a **payment** against the order with the customer's saved-card token:
   `POST /v1/payments/create/json` (Razorpay's server-to-server API) carrying our notes
   (checkout_id, attempt, idempotency_key). It comes back `authorized`, `created` (pending
   customer authentication, e.g. 3-D Secure: the `next` redirect) or as a 400 whose `reason`
   says why the bank declined.

Razorpay does not guarantee idempotency keys, so `ReconcilingGateway` looks the checkout's
payments up first (orders by receipt -> `GET /v1/orders/{id}/payments`) and after any unknown
outcome; money is integer minor units (paise) both ways.

Razorpay has **no void**: an authorized payment that is never captured is refunded by Razorpay
itself after the account's capture timeout (auto-refund). `void` therefore marks the payment
in its notes (`PATCH /v1/payments/{id}`) so that we never capture it, and reports it CANCELED;
the hold on the customer's card lasts until the auto-refund. Nor does it capture partially:
the capture amount must equal the authorized amount.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx

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
    RetryablePaymentError,
    UnknownOutcomeError,
    Voided,
    VoidRequest,
)
from adapters.payments.reconciling import ReconcilingGateway

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.razorpay.com"
RECEIPT_MAX = 40  # Razorpay's limit on an order's receipt
VOID_NOTE = "void_requested"  # our marker: this authorization must never be captured
PAGE = 100  # Razorpay's maximum `count`

# Error reasons (`error.reason` / payment `error_reason`) that are the bank's answer about the
# card, i.e. declines. Anything else on a 400 is a request we got wrong.
DECLINE_REASONS = frozenset(
    {
        "payment_failed",
        "card_declined",
        "insufficient_funds",
        "authentication_failed",
        "incorrect_card_details",
        "card_expired",
        "payment_risk_check_failed",
        "international_transaction_not_allowed",
        "transaction_not_permitted",
        "bank_technical_error",
        "gateway_technical_error",
        "payment_timed_out",
    }
)
# Declines after which the same card can succeed later (the issuer or network was the problem).
_RETRYABLE_DECLINES = frozenset(
    {"bank_technical_error", "gateway_technical_error", "payment_timed_out"}
)


def receipt_for(checkout_id: str) -> str:
    """The order receipt of a checkout: the id itself when it fits Razorpay's 40 characters,
    else a digest (orders also carry the full id in their notes, which we compare)."""
    if len(checkout_id) <= RECEIPT_MAX:
        return checkout_id
    return "co_" + hashlib.sha256(checkout_id.encode()).hexdigest()[: RECEIPT_MAX - 3]


class RazorpayGateway(ReconcilingGateway):
    def __init__(
        self,
        key_id: str,
        key_secret: str,
        *,
        api_base: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        provider_name: str = "razorpay",
    ) -> None:
        # Basic auth key_id:key_secret on every request; httpx keeps the secret in the auth
        # object only (never in the URL, so it cannot reach an access log or an exception text).
        self._http = httpx.Client(
            base_url=(api_base or DEFAULT_API_BASE).rstrip("/"),
            auth=httpx.BasicAuth(key_id, key_secret),
            timeout=timeout_s,
            transport=transport,
            headers={"Content-Type": "application/json"},
        )
        self._provider = provider_name

    def __repr__(self) -> str:  # never show the credentials
        return f"RazorpayGateway(provider={self._provider!r})"

    def close(self) -> None:
        self._http.close()

    @property
    def provider(self) -> str:
        return self._provider

    # --- raw calls -------------------------------------------------------------------------

    def _create_authorization(self, request: AuthorizationRequest) -> AuthorizationResult:
        order_id = self._order_for(request)
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.upper(),
            "order_id": order_id,
            "method": "card",
            "token": request.payment_method,
            "notes": _notes(request.checkout_id, request.attempt, request.idempotency_key),
        }
        if request.customer_id.startswith("cust_"):
            body["customer_id"] = request.customer_id  # a Razorpay customer owning the token
        try:
            created = self._call("POST", "/v1/payments/create/json", body, mutating=True)
        except _Declined as d:
            return d.declined
        payment_id = created.get("razorpay_payment_id") or created.get("id")
        if not isinstance(payment_id, str):
            raise UnknownOutcomeError("razorpay create payment: no payment id in the answer")
        try:
            payment = self._call("GET", f"/v1/payments/{payment_id}", None, mutating=False)
        except RetryablePaymentError as e:
            # The payment exists; only its status is unknown to us: reconcile by lookup.
            raise UnknownOutcomeError(
                f"razorpay payment {payment_id} created, status unread"
            ) from e
        snap = _snapshot(payment, ())
        if snap.status == PaymentStatus.AUTHORIZED:
            return Authorized(
                payment_id=snap.payment_id, amount=snap.amount, currency=snap.currency
            )
        if snap.status == PaymentStatus.REQUIRES_ACTION:
            url = _action_url(created)
            # Razorpay's `next` redirect is the whole action: the storefront sends the buyer there.
            kind = "redirect_to_url" if url is not None else None
            return ActionRequired(payment_id=snap.payment_id, action_url=url, kind=kind)
        if snap.status == PaymentStatus.REQUIRES_PAYMENT_METHOD:
            code = snap.decline_code
            return Declined(
                reason=str(payment.get("error_description") or "payment failed"),
                decline_code=code,
                payment_id=snap.payment_id,
                retryable=code in _RETRYABLE_DECLINES,
            )
        raise PermanentPaymentError(f"payment {snap.payment_id} in unexpected status {snap.status}")

    def _order_for(self, request: AuthorizationRequest) -> str:
        """An unpaid order of this checkout for this amount, or a new one. Orders hold no money,
        so reusing one is always safe; a lost create answer at worst leaves an empty order."""
        currency = request.currency.upper()
        for order in self._orders_of(request.checkout_id):
            if (
                int(order.get("amount") or 0) == request.amount
                and str(order.get("currency")) == currency
                and order.get("status") != "paid"
            ):
                return str(order["id"])
        order = self._call(
            "POST",
            "/v1/orders",
            {
                "amount": request.amount,
                "currency": currency,
                "receipt": receipt_for(request.checkout_id),
                "notes": {"checkout_id": request.checkout_id, "attempt": str(request.attempt)},
                "payment_capture": 0,
            },
            mutating=True,
        )
        return str(order["id"])

    def _capture(self, request: CaptureRequest) -> Captured:
        # Razorpay would capture a payment we voided (void is only our note there): refuse here.
        current = self.retrieve(request.payment_id)
        if current.status == PaymentStatus.CANCELED:
            raise PermanentPaymentError(f"payment {request.payment_id} was voided")
        if current.status == PaymentStatus.CAPTURED:
            return Captured(current.payment_id, current.amount_captured, current.currency)
        payment = self._call(
            "POST",
            f"/v1/payments/{request.payment_id}/capture",
            {"amount": request.amount, "currency": request.currency.upper()},
            mutating=True,
        )
        snap = _snapshot(payment, ())
        if snap.status != PaymentStatus.CAPTURED:
            raise UnknownOutcomeError(f"capture of {snap.payment_id} left it {snap.status}")
        return Captured(
            payment_id=snap.payment_id, amount=snap.amount_captured, currency=snap.currency
        )

    def _cancel(self, request: VoidRequest) -> Voided:
        payment = self._call("GET", f"/v1/payments/{request.payment_id}", None, mutating=False)
        snap = _snapshot(payment, ())
        if snap.status == PaymentStatus.CANCELED:
            return Voided(payment_id=snap.payment_id)
        if snap.status not in (PaymentStatus.AUTHORIZED, PaymentStatus.REQUIRES_ACTION):
            raise PermanentPaymentError(f"cannot void a payment that is {snap.status}")
        # No void API: mark it so we never capture it; Razorpay auto-refunds an uncaptured
        # authorization after the capture timeout (and a `created` one simply expires).
        notes = {**_notes_of(payment), VOID_NOTE: request.idempotency_key}
        self._call("PATCH", f"/v1/payments/{request.payment_id}", {"notes": notes}, mutating=True)
        return Voided(payment_id=request.payment_id)

    def _create_refund(self, request: RefundRequest) -> Refunded:
        refund = self._call(
            "POST",
            f"/v1/payments/{request.payment_id}/refund",
            {
                "amount": request.amount,
                "notes": _notes(request.checkout_id, request.attempt, request.idempotency_key),
            },
            mutating=True,
        )
        return Refunded(
            payment_id=request.payment_id,
            refund_id=str(refund["id"]),
            amount=int(refund["amount"]),
            currency=str(refund.get("currency") or request.currency).lower(),
        )

    # --- reads -----------------------------------------------------------------------------

    def retrieve(self, payment_id: str) -> PaymentSnapshot:
        payment = self._call("GET", f"/v1/payments/{payment_id}", None, mutating=False)
        records: tuple[RefundRecord, ...] = ()
        if int(payment.get("amount_refunded") or 0) > 0 or payment.get("refund_status"):
            records = tuple(
                _refund_record(r) for r in self._paged(f"/v1/payments/{payment_id}/refunds", {})
            )
        return _snapshot(payment, records)

    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]:
        snaps = []
        for order in self._orders_of(checkout_id):
            for payment in self._paged(f"/v1/orders/{order['id']}/payments", {}):
                snap = _snapshot(payment, ())
                # Payments made against our order by someone else's client (Checkout.js with
                # the order id) still belong to the checkout: the order names it.
                if snap.checkout_id is None:
                    snap = _with_checkout(snap, checkout_id)
                snaps.append(snap)
        return sorted(snaps, key=lambda s: (s.created, s.payment_id))

    def _orders_of(self, checkout_id: str) -> list[Mapping[str, Any]]:
        orders = self._paged("/v1/orders", {"receipt": receipt_for(checkout_id)})
        # A digest receipt could collide; the notes carry the full checkout id.
        return [o for o in orders if _notes_of(o).get("checkout_id") == checkout_id]

    def _paged(self, path: str, params: Mapping[str, str]) -> list[Mapping[str, Any]]:
        items: list[Mapping[str, Any]] = []
        while True:
            query = {**params, "count": str(PAGE), "skip": str(len(items))}
            page = self._call("GET", path, None, mutating=False, params=query)
            batch = page.get("items") or []
            items.extend(batch)
            if len(batch) < PAGE:
                return items

    # --- HTTP + error translation ------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        mutating: bool,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        what = f"razorpay {method} {_route(path)}"
        try:
            response = self._http.request(method, path, json=body, params=params)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # Never left this process: safe to retry whatever it was.
            raise RetryablePaymentError(f"{what}: {type(e).__name__}") from e
        except httpx.TransportError as e:
            # Read timeout, reset, protocol error: a write may have been applied.
            cls = UnknownOutcomeError if mutating else RetryablePaymentError
            raise cls(f"{what}: {type(e).__name__}") from e
        if response.is_success:
            try:
                data = response.json()
            except ValueError as e:
                cls = UnknownOutcomeError if mutating else RetryablePaymentError
                raise cls(f"{what}: answer is not JSON") from e
            if not isinstance(data, dict):
                raise PermanentPaymentError(f"{what}: unexpected answer shape")
            return data
        raise _translate(response, mutating=mutating, what=what)


class _Declined(PermanentPaymentError):
    """The bank's decline, carried out of `_call` to become a `Declined` result of authorize
    (anywhere else it stays what it is: a request that cannot succeed as sent)."""

    def __init__(self, declined: Declined) -> None:
        super().__init__(declined.reason)
        self.declined = declined


def _translate(response: httpx.Response, *, mutating: bool, what: str) -> PaymentError:
    """Razorpay error -> our family. Messages carry Razorpay's code/reason/description, never the
    request (which may hold the token) or the credentials."""
    status = response.status_code
    try:
        error = (response.json() or {}).get("error") or {}
    except ValueError:
        error = {}
    code = str(error.get("code") or "")
    reason = str(error.get("reason") or "")
    description = str(error.get("description") or "")
    msg = f"{what}: {status} {code} {reason}: {description}".rstrip(": ")
    if status == 429:
        return RetryablePaymentError(msg)
    if status >= 500 or code in ("SERVER_ERROR", "GATEWAY_ERROR"):
        # Razorpay's own or the bank gateway's failure: a write may have been applied.
        return UnknownOutcomeError(msg) if mutating else RetryablePaymentError(msg)
    if status == 401:
        return PermanentPaymentError(msg)  # wrong key: no retry will fix it
    if status == 404 or "does not exist" in description:
        return PaymentNotFoundError(msg)
    if reason in DECLINE_REASONS and error.get("step") != "payment_initiation":
        metadata = error.get("metadata") or {}
        payment_id = metadata.get("payment_id")
        return _Declined(
            Declined(
                reason=description or "payment failed",
                decline_code=reason,
                payment_id=payment_id if isinstance(payment_id, str) else None,
                retryable=reason in _RETRYABLE_DECLINES,
            )
        )
    return PermanentPaymentError(msg)


def _route(path: str) -> str:
    """The path with ids masked, for messages (ids are not secret, but keep messages stable)."""
    parts = path.split("/")
    return "/".join("{id}" if "_" in p else p for p in parts)


# --- mapping helpers ---------------------------------------------------------------------------


def _notes(checkout_id: str, attempt: int, idempotency_key: str) -> dict[str, str]:
    return {"checkout_id": checkout_id, "attempt": str(attempt), "idempotency_key": idempotency_key}


def _notes_of(entity: Mapping[str, Any]) -> dict[str, str]:
    # Razorpay serialises empty notes as [] rather than {}.
    notes = entity.get("notes")
    return {str(k): str(v) for k, v in notes.items()} if isinstance(notes, Mapping) else {}


def _action_url(created: Mapping[str, Any]) -> str | None:
    for action in created.get("next") or []:
        if isinstance(action, Mapping) and action.get("action") == "redirect":
            url = action.get("url")
            return url if isinstance(url, str) else None
    return None


def _status(payment: Mapping[str, Any]) -> PaymentStatus:
    status = payment.get("status")
    captured = bool(payment.get("captured"))
    voided = VOID_NOTE in _notes_of(payment)
    if status == "created":
        return PaymentStatus.CANCELED if voided else PaymentStatus.REQUIRES_ACTION
    if status == "authorized":
        return PaymentStatus.CANCELED if voided else PaymentStatus.AUTHORIZED
    if status == "captured":
        return PaymentStatus.CAPTURED
    if status == "refunded":
        # Fully refunded after capture; or the auto-refund of an authorization never captured
        # (what a void becomes at Razorpay).
        return PaymentStatus.CAPTURED if captured else PaymentStatus.CANCELED
    if status == "failed":
        return PaymentStatus.REQUIRES_PAYMENT_METHOD
    return PaymentStatus.PROCESSING  # unknown status: treat as "may hold money", never reuse


def _snapshot(payment: Mapping[str, Any], refunds: tuple[RefundRecord, ...]) -> PaymentSnapshot:
    status = _status(payment)
    amount = int(payment["amount"])
    captured = amount if status == PaymentStatus.CAPTURED else 0
    notes = _notes_of(payment)
    reason = payment.get("error_reason") or payment.get("error_code")
    return PaymentSnapshot(
        payment_id=str(payment["id"]),
        checkout_id=notes.get("checkout_id"),
        idempotency_key=notes.get("idempotency_key"),
        status=status,
        amount=amount,
        currency=str(payment["currency"]).lower(),
        amount_capturable=amount if status == PaymentStatus.AUTHORIZED else 0,
        amount_captured=captured,
        amount_refunded=int(payment.get("amount_refunded") or 0) if captured else 0,
        decline_code=str(reason) if reason and status != PaymentStatus.CAPTURED else None,
        refunds=refunds,
        created=int(payment.get("created_at") or 0),
    )


def _with_checkout(snap: PaymentSnapshot, checkout_id: str) -> PaymentSnapshot:
    from dataclasses import replace

    return replace(snap, checkout_id=checkout_id)


def _refund_record(refund: Mapping[str, Any]) -> RefundRecord:
    return RefundRecord(
        refund_id=str(refund["id"]),
        amount=int(refund["amount"]),
        idempotency_key=_notes_of(refund).get("idempotency_key"),
        status=str(refund.get("status")),
    )
