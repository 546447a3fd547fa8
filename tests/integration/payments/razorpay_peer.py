"""A local Razorpay contract peer: the documented orders/payments/refunds HTTP API, in memory.

A `ThreadingHTTPServer` on 127.0.0.1:0 (one per test session or test), speaking what
`RazorpayGateway` relies on and what Razorpay documents:

* basic auth `key_id:key_secret` (401 `BAD_REQUEST_ERROR` otherwise);
* `POST /v1/orders` (receipt <= 40 chars, amount >= 100 minor units), `GET /v1/orders?receipt=`,
  `GET /v1/orders/{id}`, `GET /v1/orders/{id}/payments`;
* `POST /v1/payments/create/json` against an order, with a card token; test tokens decide the
  outcome (`TEST_CARDS`): authorized, `created` pending 3-D Secure (a `next` redirect), or a
  failed payment answered with 400 and the bank's `reason`;
* `GET`/`PATCH /v1/payments/{id}` (notes), `POST /v1/payments/{id}/capture` (amount must equal
  the authorized amount: Razorpay has no partial capture), `POST /v1/payments/{id}/refund`
  (never above captured - refunded; only on captured payments), `GET /v1/payments/{id}/refunds`;
* lists as `{"entity": "collection", "count", "items"}` with `count`/`skip`;
* errors as `{"error": {"code", "description", "source", "step", "reason", "metadata"}}`.

Like Razorpay it honours no idempotency header. It records the webhooks Razorpay would send
(`payment.authorized`, `payment.failed`, `payment.captured`, `refund.processed`), each signed as
`X-Razorpay-Signature` = hex HMAC-SHA256(raw body, webhook secret), in `sent_webhooks`.

Test-only route (like localstripe's `_authenticate`):
`POST /_test/payments/{id}/authenticate?success=true|false` completes 3-D Secure.
Fault injection: `fail_next(method, path_prefix, status, code)` answers the next matching request
with an error *without* applying it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Test card tokens -> (payment status after create, error reason when failed).
TEST_CARDS: dict[str, tuple[str, str | None]] = {
    "4242424242424242": ("authorized", None),
    "4000000000000341": ("failed", "card_declined"),
    "4000000000000002": ("failed", "payment_failed"),
    "4000000000009995": ("failed", "insufficient_funds"),
    "4000002500003155": ("created", None),  # 3-D Secure required
}
# Stripe-style aliases the shared contract and ledger tests use directly.
ALIASES = {"pm_card_visa": "4242424242424242"}


def token_for(card_number: str) -> str:
    return f"token_{card_number}"


def _id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(14))


@dataclass(frozen=True)
class SentWebhook:
    event_id: str  # X-Razorpay-Event-Id
    event: str
    body: bytes
    signature: str  # X-Razorpay-Signature


@dataclass
class _Fault:
    method: str
    path_prefix: str
    status: int
    code: str


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        description: str,
        *,
        code: str = "BAD_REQUEST_ERROR",
        reason: str = "input_validation_failed",
        step: str = "payment_initiation",
        source: str = "business",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.body = {
            "error": {
                "code": code,
                "description": description,
                "source": source,
                "step": step,
                "reason": reason,
                "metadata": metadata or {},
            }
        }


@dataclass
class RazorpayPeer:
    key_id: str
    key_secret: str
    webhook_secret: str
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sent_webhooks: list[SentWebhook] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    base_url: str = ""
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- test controls ---------------------------------------------------------------------

    def fail_next(
        self, method: str, path_prefix: str, status: int = 500, code: str = "SERVER_ERROR"
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(method, path_prefix, status, code))

    def payments_of_checkout(self, checkout_id: str) -> list[str]:
        """Independent of the gateway: every payment whose order or notes name the checkout."""
        with self._lock:
            orders = {
                oid
                for oid, o in self.orders.items()
                if o["notes"].get("checkout_id") == checkout_id
            }
            found = [
                p
                for p in self.payments.values()
                if p["order_id"] in orders or p["notes"].get("checkout_id") == checkout_id
            ]
            return [p["id"] for p in sorted(found, key=lambda p: p["_seq"])]

    def webhooks_for(self, payment_id: str) -> list[SentWebhook]:
        with self._lock:
            return [w for w in self.sent_webhooks if payment_id.encode() in w.body]

    # --- dispatch --------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        url = urlsplit(raw_path)
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append((method, path))
            try:
                if not path.startswith("/_test/"):
                    self._authenticate(headers.get("Authorization", ""))
                for fault in self._faults:
                    if fault.method == method and path.startswith(fault.path_prefix):
                        self._faults.remove(fault)
                        raise _ApiError(
                            fault.status, "injected failure", code=fault.code, reason="server_error"
                        )
                data = json.loads(body) if body else {}
                return 200, self._route(method, path, query, data)
            except _ApiError as e:
                return e.status, e.body

    def _authenticate(self, header: str) -> None:
        expected = base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        if not hmac.compare_digest(header, f"Basic {expected}"):
            raise _ApiError(401, "Authentication failed", reason="authentication_failed")

    def _route(
        self, method: str, path: str, query: dict[str, str], data: dict[str, Any]
    ) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        match method, parts:
            case "POST", ["v1", "orders"]:
                return self._create_order(data)
            case "GET", ["v1", "orders"]:
                items = [
                    _public(o)
                    for o in self.orders.values()
                    if "receipt" not in query or o["receipt"] == query["receipt"]
                ]
                return _collection(list(reversed(items)), query)  # newest first, like Razorpay
            case "GET", ["v1", "orders", order_id]:
                return _public(self._order(order_id))
            case "GET", ["v1", "orders", order_id, "payments"]:
                self._order(order_id)
                items = [_public(p) for p in self.payments.values() if p["order_id"] == order_id]
                return _collection(items, query)
            case "POST", ["v1", "payments", "create", "json"]:
                return self._create_payment(data)
            case "GET", ["v1", "payments", payment_id]:
                return _public(self._payment(payment_id))
            case "PATCH", ["v1", "payments", payment_id]:
                payment = self._payment(payment_id)
                payment["notes"] = _notes(data.get("notes"))
                return _public(payment)
            case "POST", ["v1", "payments", payment_id, "capture"]:
                return self._capture(self._payment(payment_id), data)
            case "POST", ["v1", "payments", payment_id, "refund"]:
                return self._refund(self._payment(payment_id), data)
            case "GET", ["v1", "payments", payment_id, "refunds"]:
                self._payment(payment_id)
                return _collection(list(self.refunds.get(payment_id, [])), query)
            case "POST", ["_test", "payments", payment_id, "authenticate"]:
                return self._complete_3ds(self._payment(payment_id), query.get("success"))
        raise _ApiError(404, "The requested URL was not found on the server.")

    # --- entities --------------------------------------------------------------------------

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise _ApiError(400, "The id provided does not exist")
        return order

    def _payment(self, payment_id: str) -> dict[str, Any]:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise _ApiError(400, "The id provided does not exist")
        return payment

    def _create_order(self, data: dict[str, Any]) -> dict[str, Any]:
        amount = data.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise _ApiError(400, "The amount must be an integer.")
        if amount < 100:
            raise _ApiError(400, "Order amount less than minimum amount allowed")
        receipt = str(data.get("receipt") or "")
        if len(receipt) > 40:
            raise _ApiError(400, "The receipt may not be greater than 40 characters.")
        order: dict[str, Any] = {
            "id": _id("order_"),
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": str(data.get("currency") or "INR").upper(),
            "receipt": receipt,
            "status": "created",
            "attempts": 0,
            "notes": _notes(data.get("notes")),
            "payment_capture": int(data.get("payment_capture", 1)),
            "created_at": int(time.time()),
        }
        self.orders[order["id"]] = order
        return _public(order)

    def _create_payment(self, data: dict[str, Any]) -> dict[str, Any]:
        order = self._order(str(data.get("order_id")))
        token = str(data.get("token") or "")
        card = ALIASES.get(token) or (token[len("token_") :] if token.startswith("token_") else "")
        if card not in TEST_CARDS:
            raise _ApiError(400, "The token id provided does not exist")
        if data.get("amount") != order["amount"]:
            raise _ApiError(400, "Payment amount is different from order amount.")
        if str(data.get("currency") or "").upper() != order["currency"]:
            raise _ApiError(400, "Payment currency is different from order currency.")
        if order["status"] == "paid":
            raise _ApiError(400, "Order has already been paid.")
        status, reason = TEST_CARDS[card]
        payment: dict[str, Any] = {
            "id": _id("pay_"),
            "entity": "payment",
            "amount": order["amount"],
            "currency": order["currency"],
            "status": status,
            "order_id": order["id"],
            "method": "card",
            "amount_refunded": 0,
            "refund_status": None,
            "captured": False,
            "notes": _notes(data.get("notes")),
            "error_code": None,
            "error_description": None,
            "error_reason": None,
            "created_at": int(time.time()),
            "_seq": len(self.payments),
        }
        order["attempts"] += 1
        order["status"] = "attempted"
        self.payments[payment["id"]] = payment
        if status == "failed":
            self._fail(payment, reason or "payment_failed")
            raise _ApiError(
                400,
                "Your payment has been declined by the bank.",
                reason=str(reason),
                step="payment_authorization",
                source="bank",
                metadata={"payment_id": payment["id"], "order_id": order["id"]},
            )
        if status == "authorized":
            self._emit("payment.authorized", payment)
            return {"razorpay_payment_id": payment["id"], "next": []}
        url = f"{self.base_url}/v1/payments/{payment['id']}/authenticate"
        return {
            "razorpay_payment_id": payment["id"],
            "next": [{"action": "redirect", "url": url}],
        }

    def _fail(self, payment: dict[str, Any], reason: str) -> None:
        payment.update(
            status="failed",
            error_code="BAD_REQUEST_ERROR",
            error_description="Payment failed",
            error_reason=reason,
        )
        self._emit("payment.failed", payment)

    def _complete_3ds(self, payment: dict[str, Any], success: str | None) -> dict[str, Any]:
        if payment["status"] != "created":
            raise _ApiError(400, f"payment is {payment['status']}, not pending authentication")
        if success == "true":
            payment["status"] = "authorized"
            self._emit("payment.authorized", payment)
        else:
            self._fail(payment, "authentication_failed")
        return _public(payment)

    def _capture(self, payment: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if payment["captured"]:
            raise _ApiError(400, "This payment has already been captured")
        if payment["status"] != "authorized":
            raise _ApiError(400, "Only payments which have been authorized can be captured")
        if data.get("amount") != payment["amount"]:
            raise _ApiError(400, "Capture amount must be equal to the amount authorized")
        if str(data.get("currency") or "").upper() != payment["currency"]:
            raise _ApiError(400, "Currency must be the payment currency")
        payment.update(status="captured", captured=True)
        order = self.orders[payment["order_id"]]
        order.update(status="paid", amount_paid=payment["amount"], amount_due=0)
        self._emit("payment.captured", payment)
        return _public(payment)

    def _refund(self, payment: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if not payment["captured"]:
            raise _ApiError(400, "Refunds can only be made on captured payments")
        remaining = payment["amount"] - payment["amount_refunded"]
        amount = data.get("amount", remaining)
        if not isinstance(amount, int) or amount <= 0:
            raise _ApiError(400, "The amount must be an integer greater than 0.")
        if amount > remaining:
            raise _ApiError(400, "The refund amount provided is greater than amount captured")
        refund = {
            "id": _id("rfnd_"),
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment["id"],
            "notes": _notes(data.get("notes")),
            "status": "processed",
            "speed_processed": "normal",
            "created_at": int(time.time()),
        }
        self.refunds.setdefault(payment["id"], []).append(refund)
        payment["amount_refunded"] += amount
        full = payment["amount_refunded"] == payment["amount"]
        payment.update(refund_status="full" if full else "partial")
        if full:
            payment["status"] = "refunded"
        self._emit("refund.processed", payment, refund)
        return refund

    # --- webhooks --------------------------------------------------------------------------

    def _emit(
        self, event: str, payment: dict[str, Any], refund: dict[str, Any] | None = None
    ) -> None:
        payload: dict[str, Any] = {"payment": {"entity": _public(payment)}}
        contains = ["payment"]
        if refund is not None:
            payload = {"refund": {"entity": dict(refund)}, **payload}
            contains = ["refund", "payment"]
        body = json.dumps(
            {
                "entity": "event",
                "account_id": "acc_peer",
                "event": event,
                "contains": contains,
                "payload": payload,
                "created_at": int(time.time()),
            }
        ).encode()
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        self.sent_webhooks.append(SentWebhook(_id("evt_"), event, body, signature))


def _notes(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    if len(value) > 15:
        raise _ApiError(400, "Number of fields in notes should be less than or equal to 15")
    return {str(k): str(v) for k, v in value.items()}


def _public(entity: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in entity.items() if not k.startswith("_")}
    if not out.get("notes") and "notes" in out:
        out["notes"] = []  # Razorpay serialises empty notes as an empty list
    return out


def _collection(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    count = min(int(query.get("count", "10")), 100)
    skip = int(query.get("skip", "0"))
    page = items[skip : skip + count]
    return {"entity": "collection", "count": len(page), "items": page}


def _handler(peer: RazorpayPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without NODELAY the client's delayed ACK
            # adds ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = peer.handle(self.command, self.path, self.headers, body)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: request lines would carry nothing useful to a test run

    return Handler


@contextmanager
def running_peer(
    key_id: str = "rzp_test_peer", key_secret: str | None = None, webhook_secret: str = "whsec_rzp"
) -> Iterator[RazorpayPeer]:
    peer = RazorpayPeer(key_id, key_secret or secrets.token_hex(16), webhook_secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    peer.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="razorpay-peer",
        daemon=True,
    )
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
