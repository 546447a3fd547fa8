"""PayPal (Orders v2 + Payments v2, intent AUTHORIZE) on its documented REST API, with httpx.

**Which id is `payment_id`: the PayPal order id.** It is the one id that exists from the first
call on and never changes: a payment that needs the payer (PAYER_ACTION_REQUIRED) has no
authorization yet, and the saga waits for, and later captures, the id it was handed then. Capture,
void and refund read the order (`GET /v2/checkout/orders/{id}`, which embeds its authorizations,
captures and refunds) and act on the authorization or capture inside it.

The flow per checkout:

1. **One order per checkout**, money-free: the one our `OrderIndex` recorded for the checkout,
   else `POST /v2/checkout/orders {intent: AUTHORIZE, purchase_units: [{custom_id:
   checkout_id, invoice_id: checkout_id, amount}]}` with `PayPal-Request-Id` derived from the
   checkout id alone. PayPal answers a repeated request id with the order it created the first
   time (keys are kept 6 hours; the saga's authorization window is minutes), so every attempt,
   redelivery or retry after a lost answer lands on the same order even when the index lost
   it. The order holds no money, so creating it can never double-charge.
2. **The authorization**: `POST /v2/checkout/orders/{id}/authorize` with the vaulted payment
   source (`payment_source.card.vault_id` or `payment_source.paypal.vault_id`) and
   `PayPal-Request-Id` = our idempotency key. PayPal authorizes an order once
   (ORDER_ALREADY_AUTHORIZED afterwards), so a second attempt cannot hold the money twice; we
   read the order first and reuse an authorization it already has.
3. `PAYER_ACTION_REQUIRED` (3-D Secure, a vault needing consent): the order's `payer-action`
   link is the `ActionRequired.action_url` (kind `payer_action`). When the payer finishes, the
   order is APPROVED: PayPal holds nothing yet but needs only our server call, which the next
   `authorize` (saga retry or redelivery), or else `capture`, makes. Snapshots therefore report
   an APPROVED order as AUTHORIZED (docs/decisions/0003-payments.md, decision 18).

`find_by_checkout` cannot ask PayPal (no list or search of orders): it reads the orders we
recorded in an `OrderIndex` (one small entry per checkout: `RedisOrderIndex` shared by the
payment workers, else a bounded in-memory one). Authorization does not depend on it alone:
step 1 falls back to PayPal's own idempotency replay.

Money: PayPal's decimal strings <-> our integer minor units (`paypal_money`), never floats.
OAuth2: client-credentials token (`POST /v1/oauth2/token`), cached until shortly before it
expires, fetched again once when PayPal answers 401 to a cached token.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx

from adapters.payments.paypal_money import from_paypal, to_paypal
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

DEFAULT_API_BASE = "https://api-m.paypal.com"
REQUEST_ID_MAX = 108  # PayPal-Request-Id
CUSTOM_ID_MAX = 127  # custom_id / invoice_id
TOKEN_MARGIN_S = 60.0  # renew this long before PayPal's expires_in runs out
PAYER_ACTION = "payer_action"

# `details[].issue` of a 422 that is the payer's funding source saying no: declines, with the
# normalised code the rest of the engine knows (Stripe's names where one fits).
DECLINE_ISSUES: Mapping[str, str] = {
    "INSTRUMENT_DECLINED": "card_declined",
    "TRANSACTION_REFUSED": "transaction_refused",
    "PAYER_CANNOT_PAY": "payer_cannot_pay",
    "CARD_EXPIRED": "expired_card",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING": "card_declined",
    "DECLINED_DUE_TO_RELATED_TXN": "card_declined",
}
PAYER_ACTION_ISSUES = frozenset({"PAYER_ACTION_REQUIRED"})
ALREADY_AUTHORIZED = "ORDER_ALREADY_AUTHORIZED"

_CAPTURED = frozenset({"COMPLETED", "PENDING", "PARTIALLY_REFUNDED", "REFUNDED"})
_REFUNDED = frozenset({"COMPLETED", "PENDING"})


class OrderIndex(Protocol):
    """Our own record of the PayPal orders made for a checkout (PayPal cannot list them)."""

    def add(self, checkout_id: str, order_id: str) -> None: ...

    def orders(self, checkout_id: str) -> list[str]: ...


class InMemoryOrderIndex:
    """Process-local and bounded (least recently used checkouts are forgotten first)."""

    def __init__(self, max_checkouts: int = 100_000) -> None:
        self._max = max_checkouts
        self._orders: OrderedDict[str, list[str]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, checkout_id: str, order_id: str) -> None:
        with self._lock:
            known = self._orders.setdefault(checkout_id, [])
            if order_id not in known:
                known.append(order_id)
            self._orders.move_to_end(checkout_id)
            while len(self._orders) > self._max:
                self._orders.popitem(last=False)

    def orders(self, checkout_id: str) -> list[str]:
        with self._lock:
            return list(self._orders.get(checkout_id, ()))


class RedisOrderIndex:
    """The index shared by every payment worker: one sorted set per checkout (order ids by
    first sight), expiring `ttl_s` after its last write. A lost write costs only the lookup,
    never a second charge (authorization reconciles by PayPal's replay)."""

    def __init__(
        self, client: Any, *, ttl_s: int = 30 * 24 * 3600, prefix: str = "paypal:orders:"
    ) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._prefix = prefix

    def add(self, checkout_id: str, order_id: str) -> None:
        key = self._prefix + checkout_id
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(key, {order_id: time.time()}, nx=True)
        pipe.expire(key, self._ttl)
        pipe.execute()

    def orders(self, checkout_id: str) -> list[str]:
        raw = self._redis.zrange(self._prefix + checkout_id, 0, -1)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]


def request_key(*parts: str) -> str:
    """A PayPal-Request-Id: the text itself when it fits 108 characters, else a digest."""
    text = ":".join(parts)
    if len(text) <= REQUEST_ID_MAX:
        return text
    return "saga-" + hashlib.sha256(text.encode()).hexdigest()


def order_request_id(checkout_id: str) -> str:
    """The create-order key of a checkout: the same for every attempt, so they share one order."""
    return "saga-order-" + hashlib.sha256(checkout_id.encode()).hexdigest()


def payment_source(payment_method: str) -> dict[str, Any]:
    """Our payment method string -> PayPal's `payment_source`: `paypal:<vault id>` for a vaulted
    PayPal wallet, `card:<vault id>` (or a bare vault id) for a vaulted card."""
    kind, sep, vault_id = payment_method.partition(":")
    if not sep:
        kind, vault_id = "card", payment_method
    if kind not in ("card", "paypal") or not vault_id:
        raise PermanentPaymentError("payment method is not a PayPal vault id")
    return {kind: {"vault_id": vault_id}}


class PayPalGateway(ReconcilingGateway):
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        api_base: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        provider_name: str = "paypal",
        index: OrderIndex | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.Client(
            base_url=(api_base or DEFAULT_API_BASE).rstrip("/"),
            timeout=timeout_s,
            transport=transport,
        )
        # The client secret lives in the auth object only (never in a URL, log or message).
        self._basic = httpx.BasicAuth(client_id, client_secret)
        self._provider = provider_name
        self._index: OrderIndex = index if index is not None else InMemoryOrderIndex()
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the credentials
        return f"PayPalGateway(provider={self._provider!r})"

    def close(self) -> None:
        self._http.close()

    @property
    def provider(self) -> str:
        return self._provider

    # --- authorize -------------------------------------------------------------------------

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        """PayPal's own records reconcile: the checkout's one order (found again by its request
        id) shows any authorization an earlier attempt made, so no `find_by_checkout` is needed
        first. After an unknown outcome the same steps run again: they replay, never repeat."""
        try:
            return self._create_authorization(request)
        except UnknownOutcomeError:
            try:
                result = self._create_authorization(request)
            except (RetryablePaymentError, UnknownOutcomeError) as e:
                raise UnknownOutcomeError(
                    f"authorize for checkout {request.checkout_id}: outcome unknown and the "
                    "reconciliation failed"
                ) from e
            log.info(
                "authorize reconciled after unknown outcome",
                extra={"checkout_id": request.checkout_id},
            )
            return result

    def _create_authorization(self, request: AuthorizationRequest) -> AuthorizationResult:
        order = self._order_for(request)
        snap = _snapshot(order)
        if (snap.amount, snap.currency) != (request.amount, request.currency.lower()):
            raise PermanentPaymentError(
                f"checkout {request.checkout_id} already has order {snap.payment_id} for "
                f"{snap.amount} {snap.currency}, not {request.amount} {request.currency}"
            )
        existing = self._from_order(order)
        if existing is not None:
            return existing
        if order.get("status") == "APPROVED":
            # One request id per approved order, not per attempt: the attempt that met the
            # payer action has its key's answer (PAYER_ACTION_REQUIRED) stored at PayPal.
            return self._from_approved(order)
        return self._authorize_order(
            snap.payment_id,
            request_key(request.idempotency_key),
            payment_source(request.payment_method),
        )

    def _order_for(self, request: AuthorizationRequest) -> dict[str, Any]:
        if len(request.checkout_id) > CUSTOM_ID_MAX:
            raise PermanentPaymentError(f"checkout id longer than {CUSTOM_ID_MAX} characters")
        # Our record first: it outlives PayPal's 6-hour request-id memory and saves the create.
        for order_id in self._index.orders(request.checkout_id):
            try:
                order = self._get_order(order_id)
            except PaymentNotFoundError:
                continue  # e.g. an order of another PayPal account under the same key
            if _custom_id(order) == request.checkout_id:
                return order
        unit = {
            "reference_id": "default",
            "custom_id": request.checkout_id,
            "invoice_id": request.checkout_id,
            "amount": to_paypal(request.amount, request.currency),
        }
        created = self._call(
            "POST",
            "/v2/checkout/orders",
            {"intent": "AUTHORIZE", "purchase_units": [unit]},
            mutating=True,
            request_id=order_request_id(request.checkout_id),
        )
        order_id = _str(created.get("id"))
        if _custom_id(created) != request.checkout_id:
            raise PermanentPaymentError(f"order {order_id} does not belong to this checkout")
        self._index.add(request.checkout_id, order_id)
        # A replayed create answers with the order as it was then: read its state now.
        return self._get_order(order_id)

    def _from_order(self, order: Mapping[str, Any]) -> AuthorizationResult | None:
        """What an existing order already says, or None when it still needs authorizing."""
        order_id = _str(order.get("id"))
        amount, currency = _amount(order)
        auth = _authorization(order)
        if auth is not None:
            status = auth.get("status")
            if status in ("CREATED", "PARTIALLY_CAPTURED", "CAPTURED"):
                return Authorized(order_id, amount, currency)
            if status == "PENDING":
                raise RetryablePaymentError(f"authorization of order {order_id} is pending")
            if status == "DENIED":
                return Declined("authorization denied", "card_declined", order_id)
            raise PermanentPaymentError(
                f"order {order_id}: its authorization is {status}; it cannot be used again"
            )
        status = order.get("status")
        if status == "PAYER_ACTION_REQUIRED":
            return _action(order)
        if status == "VOIDED":
            return Declined("payer action failed", "authentication_failed", order_id)
        if status == "COMPLETED":
            raise RetryablePaymentError(f"order {order_id} completed without an authorization")
        return None  # CREATED, SAVED, APPROVED: ours to authorize

    def _authorize_order(
        self, order_id: str, key: str, source: Mapping[str, Any] | None
    ) -> AuthorizationResult:
        body = {"payment_source": dict(source)} if source else {}
        path = f"/v2/checkout/orders/{order_id}/authorize"
        try:
            answer = self._call("POST", path, body, mutating=True, request_id=key)
        except _Declined as d:
            return Declined(d.reason, d.decline_code, order_id)
        except PermanentPaymentError as e:
            if e.code not in PAYER_ACTION_ISSUES and e.code != ALREADY_AUTHORIZED:
                raise
            # The payer must act (read the link from the order), or a concurrent attempt
            # authorized the order first (reuse it).
            answer = self._get_order(order_id)
        result = self._from_order(answer)
        if result is None:
            raise UnknownOutcomeError(
                f"authorize of order {order_id} left it {answer.get('status')}"
            )
        return result

    def _from_approved(self, order: Mapping[str, Any]) -> AuthorizationResult:
        order_id = _str(order.get("id"))
        return self._authorize_order(order_id, request_key("saga-approved", order_id), None)

    def _authorize_approved(self, order: dict[str, Any]) -> dict[str, Any]:
        """An approved order's authorization, made now if nobody made it yet. One request id
        per order, whichever call gets here first (capture, void)."""
        order_id = _str(order.get("id"))
        if _authorization(order) is not None or order.get("status") != "APPROVED":
            return order
        result = self._from_approved(order)
        if isinstance(result, Declined):
            raise PermanentPaymentError(
                f"approved order {order_id} declined at authorization: {result.decline_code}",
                code=result.decline_code,
            )
        return self._get_order(order_id)

    # --- capture / void / refund -----------------------------------------------------------

    def _capture(self, request: CaptureRequest) -> Captured:
        order = self._authorize_approved(self._get_order(request.payment_id))
        snap = _snapshot(order)
        if snap.status == PaymentStatus.CAPTURED:
            return Captured(snap.payment_id, snap.amount_captured, snap.currency)
        if snap.currency != request.currency.lower():
            raise PermanentPaymentError(
                f"capture currency {request.currency} != order currency {snap.currency}"
            )
        auth = _authorization(order)
        if auth is None or snap.status != PaymentStatus.AUTHORIZED:
            raise PermanentPaymentError(f"order {snap.payment_id} is {snap.status}: no capture")
        capture = self._call(
            "POST",
            f"/v2/payments/authorizations/{_str(auth.get('id'))}/capture",
            {"amount": to_paypal(request.amount, request.currency), "final_capture": True},
            mutating=True,
            request_id=request_key(request.idempotency_key),
        )
        status = capture.get("status")
        if status not in ("COMPLETED", "PENDING"):
            raise PermanentPaymentError(f"capture of order {snap.payment_id} is {status}")
        amount, currency = from_paypal(capture.get("amount"))
        return Captured(snap.payment_id, amount, currency)

    def _cancel(self, request: VoidRequest) -> Voided:
        order = self._get_order(request.payment_id)
        if order.get("status") == "APPROVED" and _authorization(order) is None:
            # PayPal cannot cancel an approved order, and one left approved could still be
            # authorized: authorize it, then void that, so PayPal's record says released.
            try:
                order = self._authorize_approved(order)
            except PermanentPaymentError:
                return Voided(request.payment_id)  # declined: nothing is held
        auth = _authorization(order)
        if auth is None:
            return Voided(request.payment_id)  # never authorized: nothing held to release
        status = auth.get("status")
        if status in ("VOIDED", "EXPIRED"):
            return Voided(request.payment_id)
        if status in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise PermanentPaymentError(f"order {request.payment_id} is captured: refund it")
        self._call(
            "POST",
            f"/v2/payments/authorizations/{_str(auth.get('id'))}/void",
            None,
            mutating=True,
            request_id=request_key(request.idempotency_key),
        )
        return Voided(request.payment_id)

    def _create_refund(self, request: RefundRequest) -> Refunded:
        if len(request.idempotency_key) > CUSTOM_ID_MAX:
            # The key travels as the refund's invoice_id, our only way to find the refund again.
            raise PermanentPaymentError(f"refund key longer than {CUSTOM_ID_MAX} characters")
        order = self._get_order(request.payment_id)
        capture_id = _refundable_capture(order, request.amount)
        if capture_id is None:
            raise PermanentPaymentError(f"order {request.payment_id} has no capture to refund")
        refund = self._call(
            "POST",
            f"/v2/payments/captures/{capture_id}/refund",
            {
                "amount": to_paypal(request.amount, request.currency),
                "invoice_id": request.idempotency_key,
                "custom_id": request.checkout_id[:CUSTOM_ID_MAX],
            },
            mutating=True,
            request_id=request_key(request.idempotency_key),
        )
        amount, currency = from_paypal(refund.get("amount"))
        return Refunded(request.payment_id, _str(refund.get("id")), amount, currency)

    # --- reads -----------------------------------------------------------------------------

    def retrieve(self, payment_id: str) -> PaymentSnapshot:
        return _snapshot(self._get_order(payment_id))

    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]:
        snaps = [self.retrieve(order_id) for order_id in self._index.orders(checkout_id)]
        return sorted(snaps, key=lambda s: (s.created, s.payment_id))

    def _get_order(self, order_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v2/checkout/orders/{order_id}", None, mutating=False)

    # --- OAuth2 ----------------------------------------------------------------------------

    def _access_token(self, *, renew: bool = False) -> str:
        with self._token_lock:
            if not renew and self._token is not None and self._clock() < self._token_until:
                return self._token
            what = "paypal POST /v1/oauth2/token"
            try:
                response = self._http.post(
                    "/v1/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=self._basic,
                    headers={"Accept": "application/json"},
                )
            except httpx.TransportError as e:
                # A token request changes nothing at PayPal: always safe to retry.
                raise RetryablePaymentError(f"{what}: {type(e).__name__}") from e
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryablePaymentError(
                    f"{what}: {response.status_code}", http_status=response.status_code
                )
            data = _json(response)
            token = data.get("access_token")
            if not response.is_success or not isinstance(token, str):
                code = str(data.get("error") or "")
                raise PermanentPaymentError(
                    f"{what}: {response.status_code} {code}",
                    http_status=response.status_code,
                    code=code or None,
                )
            expires_in = float(data.get("expires_in") or 0)
            self._token = token
            self._token_until = self._clock() + max(0.0, expires_in - TOKEN_MARGIN_S)
            return token

    # --- HTTP + error translation ----------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        mutating: bool,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        what = f"paypal {method} {_route(path)}"
        headers = {"Content-Type": "application/json", "Prefer": "return=representation"}
        if request_id is not None:
            headers["PayPal-Request-Id"] = request_id
        renewed = False
        while True:
            headers["Authorization"] = f"Bearer {self._access_token(renew=renewed)}"
            try:
                response = self._http.request(
                    method, path, json=body if body is not None else None, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                raise RetryablePaymentError(f"{what}: {type(e).__name__}") from e
            except httpx.TransportError as e:
                cls = UnknownOutcomeError if mutating else RetryablePaymentError
                raise cls(f"{what}: {type(e).__name__}") from e
            if response.status_code == 401 and not renewed:
                # The cached token expired or was revoked early; nothing was applied.
                renewed = True
                continue
            break
        if response.is_success:
            if response.status_code == 204 or not response.content:
                return {}
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
    """A funding-source decline, carried out of `_call` to become `Declined` in authorize."""

    def __init__(self, reason: str, decline_code: str, http_status: int) -> None:
        super().__init__(reason, http_status=http_status, code=decline_code)
        self.reason = reason
        self.decline_code = decline_code


def _translate(response: httpx.Response, *, mutating: bool, what: str) -> PaymentError:
    """PayPal's `{name, message, debug_id, details: [{issue, description}]}` -> our family. The
    message carries PayPal's name/issue and debug id, never the request or the credentials."""
    status = response.status_code
    data = _json(response)
    name = str(data.get("name") or data.get("error") or "")
    raw_details = data.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    issues = [str(d.get("issue")) for d in details if isinstance(d, dict) and d.get("issue")]
    issue = issues[0] if issues else name
    debug = data.get("debug_id")
    msg = f"{what}: {status} {name} {issue}".rstrip() + (f" (debug_id {debug})" if debug else "")
    kw: dict[str, Any] = {"http_status": status, "code": issue or None}
    if status == 429 or name == "RATE_LIMIT_REACHED":
        return RetryablePaymentError(msg, **kw)
    if status >= 500:
        # INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE: a write may have been applied.
        return UnknownOutcomeError(msg, **kw) if mutating else RetryablePaymentError(msg, **kw)
    if status == 409:
        # A request with the same PayPal-Request-Id is still being processed.
        return UnknownOutcomeError(msg, **kw) if mutating else RetryablePaymentError(msg, **kw)
    if status == 404 or name == "RESOURCE_NOT_FOUND":
        return PaymentNotFoundError(msg, **kw)
    if status == 422 and issue in DECLINE_ISSUES:
        return _Declined(f"declined: {issue}", DECLINE_ISSUES[issue], status)
    # 400 INVALID_REQUEST, 401/403 credentials, 422 state (AUTHORIZATION_VOIDED, ...): as sent,
    # this request cannot succeed.
    return PermanentPaymentError(msg, **kw)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _route(path: str) -> str:
    """The path with ids masked, for messages: PayPal ids are upper-case alphanumerics."""
    parts = path.split("/")
    return "/".join("{id}" if p.isalnum() and p.isupper() and len(p) > 8 else p for p in parts)


# --- mapping helpers ---------------------------------------------------------------------------


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UnknownOutcomeError("paypal answer without the expected id")
    return value


def _unit(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = order.get("purchase_units") or []
    if not units or not isinstance(units[0], Mapping):
        raise PermanentPaymentError("paypal order without a purchase unit")
    return units[0]


def _custom_id(order: Mapping[str, Any]) -> str | None:
    value = _unit(order).get("custom_id")
    return value if isinstance(value, str) else None


def _amount(order: Mapping[str, Any]) -> tuple[int, str]:
    return from_paypal(_unit(order).get("amount"))


def _payments(order: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    payments = _unit(order).get("payments") or {}
    items = payments.get(kind) if isinstance(payments, Mapping) else None
    return [i for i in items or [] if isinstance(i, Mapping)]


def _authorization(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    auths = _payments(order, "authorizations")
    return auths[-1] if auths else None


def _action(order: Mapping[str, Any]) -> ActionRequired:
    links = [lk for lk in order.get("links") or [] if isinstance(lk, Mapping)]
    href = next(
        (lk.get("href") for lk in links if lk.get("rel") in ("payer-action", "approve")), None
    )
    return ActionRequired(
        payment_id=_str(order.get("id")),
        action_url=href if isinstance(href, str) else None,
        kind=PAYER_ACTION,
    )


def _up_id(item: Mapping[str, Any]) -> str | None:
    """The id a refund belongs to, from its `rel: up` link (…/captures/{id})."""
    for link in item.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "up":
            return str(link.get("href", "")).rstrip("/").rsplit("/", 1)[-1] or None
    return None


def _refundable_capture(order: Mapping[str, Any], amount: int) -> str | None:
    refunded: dict[str, int] = {}
    for refund in _payments(order, "refunds"):
        if refund.get("status") in _REFUNDED and (up := _up_id(refund)):
            refunded[up] = refunded.get(up, 0) + from_paypal(refund.get("amount"))[0]
    for capture in _payments(order, "captures"):
        if capture.get("status") not in _CAPTURED:
            continue
        capture_id = str(capture.get("id"))
        if from_paypal(capture.get("amount"))[0] - refunded.get(capture_id, 0) >= amount:
            return capture_id
    return None


def _status(order: Mapping[str, Any], captured: int) -> PaymentStatus:
    if captured > 0:
        return PaymentStatus.CAPTURED
    auth = _authorization(order)
    if auth is not None:
        return {
            "CREATED": PaymentStatus.AUTHORIZED,
            "PARTIALLY_CAPTURED": PaymentStatus.AUTHORIZED,
            "VOIDED": PaymentStatus.CANCELED,
            "EXPIRED": PaymentStatus.CANCELED,
            "DENIED": PaymentStatus.REQUIRES_PAYMENT_METHOD,
        }.get(str(auth.get("status")), PaymentStatus.PROCESSING)  # PENDING, unknown: may hold
    return {
        "CREATED": PaymentStatus.REQUIRES_PAYMENT_METHOD,
        "SAVED": PaymentStatus.REQUIRES_CONFIRMATION,
        "PAYER_ACTION_REQUIRED": PaymentStatus.REQUIRES_ACTION,
        # The payer approved; only our authorize call is missing (the module docstring).
        "APPROVED": PaymentStatus.AUTHORIZED,
        "VOIDED": PaymentStatus.CANCELED,
    }.get(str(order.get("status")), PaymentStatus.PROCESSING)


def _created(order: Mapping[str, Any]) -> int:
    raw = order.get("create_time")
    if not isinstance(raw, str):
        return 0
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _snapshot(order: Mapping[str, Any]) -> PaymentSnapshot:
    amount, currency = _amount(order)
    captured = sum(
        from_paypal(c.get("amount"))[0]
        for c in _payments(order, "captures")
        if c.get("status") in _CAPTURED
    )
    refunds = tuple(
        RefundRecord(
            refund_id=str(r.get("id")),
            amount=from_paypal(r.get("amount"))[0],
            idempotency_key=r.get("invoice_id") if isinstance(r.get("invoice_id"), str) else None,
            status=str(r.get("status")),
        )
        for r in _payments(order, "refunds")
    )
    status = _status(order, captured)
    auth = _authorization(order)
    return PaymentSnapshot(
        payment_id=_str(order.get("id")),
        checkout_id=_custom_id(order),
        idempotency_key=None,  # the order serves every attempt; authorizations carry no key
        status=status,
        amount=amount,
        currency=currency,
        amount_capturable=amount if status == PaymentStatus.AUTHORIZED else 0,
        amount_captured=captured,
        amount_refunded=sum(r.amount for r in refunds if r.status in _REFUNDED),
        decline_code="card_declined"
        if auth is not None and auth.get("status") == "DENIED"
        else None,
        refunds=refunds,
        created=_created(order),
    )
