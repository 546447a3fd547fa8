"""A local PayPal contract peer: OAuth2, Orders v2 and Payments v2 (authorizations, captures,
refunds) over real HTTP, in memory, plus signed webhooks.

A `ThreadingHTTPServer` on 127.0.0.1:0 speaking what `PayPalGateway` relies on and PayPal
documents:

* `POST /v1/oauth2/token` (`grant_type=client_credentials`, HTTP basic client id/secret; 401
  `invalid_client` otherwise) -> bearer token with `expires_in`; every `/v2` call needs a live
  bearer token (401 `AUTHENTICATION_FAILURE`);
* `PayPal-Request-Id`: a repeated id on a POST answers the first answer again (status and body),
  errors included, without acting twice;
* `POST /v2/checkout/orders` (intent AUTHORIZE/CAPTURE, one purchase unit with amount,
  custom_id, invoice_id <= 127), `GET /v2/checkout/orders/{id}` (the purchase unit's
  `payments.authorizations|captures|refunds`, HATEOAS links);
* `POST /v2/checkout/orders/{id}/authorize` with a vaulted `payment_source` (or an APPROVED
  order): test vault ids decide (`TEST_VAULTS`): authorized, 422 INSTRUMENT_DECLINED, or
  PAYER_ACTION_REQUIRED (the order gets a `payer-action` link); an order authorizes once
  (422 ORDER_ALREADY_AUTHORIZED);
* `POST /v2/payments/authorizations/{id}/capture` (amount <= authorized, `final_capture`;
  422 AUTHORIZATION_VOIDED / AUTHORIZATION_ALREADY_CAPTURED / MAX_CAPTURE_AMOUNT_EXCEEDED /
  CURRENCY_MISMATCH), `.../void` (204; 422 once voided or captured),
  `POST /v2/payments/captures/{id}/refund` (422 REFUND_AMOUNT_EXCEEDED above captured -
  refunded), `GET` of authorizations, captures and refunds;
* errors as `{name, message, debug_id, details: [{issue, description}], links}`.

Webhooks PayPal would send (CHECKOUT.ORDER.APPROVED, PAYMENT.AUTHORIZATION.CREATED|VOIDED,
PAYMENT.CAPTURE.COMPLETED, PAYMENT.CAPTURE.REFUNDED) are recorded in `sent_webhooks` with their
PAYPAL-* headers, signed with the peer's key; its certificate is served (no auth) at
`GET /v1/notifications/certs/{name}`, the URL in PAYPAL-CERT-URL.

Test-only route: `POST /_test/orders/{id}/payer-action?success=true|false` (the payer finishes
or abandons 3-D Secure / approval). Fault injection: `fail_next(method, path_prefix, status,
name)` answers the next matching request with an error *without* applying it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import secrets
import socket
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from adapters.payments.paypal_money import from_paypal, to_paypal
from tests.paypal_certs import SigningIdentity, signing_identity

# Test vault ids (card numbers as ids) -> what authorizing with them does.
TEST_VAULTS: dict[str, str] = {
    "4242424242424242": "authorized",
    "4000000000000341": "INSTRUMENT_DECLINED",
    "4000000000000002": "TRANSACTION_REFUSED",
    "4000002500003155": "payer_action",  # 3-D Secure
}
ALIASES = {"pm_card_visa": "4242424242424242"}
TOKEN_TTL_S = 32_400  # what PayPal's sandbox hands out (9 hours)
CERT_NAME = "CERT-360caa42-fca2a594-peer"


def vault_for(card_number: str) -> str:
    """The payment method string of a vaulted test card (`card:<vault id>`)."""
    return f"card:{card_number}"


def _id(length: int = 17) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SentWebhook:
    event_id: str
    event_type: str
    body: bytes
    headers: dict[str, str]


@dataclass
class _Fault:
    method: str
    path_prefix: str
    status: int
    name: str


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        issue: str | None = None,
        links: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"name": name, "message": message, "debug_id": _id(13)}
        if issue is not None:
            self.body["details"] = [{"issue": issue, "description": message}]
        if links:
            self.body["links"] = links


def _unprocessable(issue: str, description: str) -> _ApiError:
    return _ApiError(
        422,
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed "
        f"business validation. {description}",
        issue,
    )


@dataclass
class PayPalPeer:
    client_id: str
    client_secret: str
    webhook_id: str
    identity: SigningIdentity = field(repr=False)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    captures: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent_webhooks: list[SentWebhook] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    request_ids: list[tuple[str, str, str | None]] = field(default_factory=list)
    token_requests: int = 0
    base_url: str = ""
    _tokens: set[str] = field(default_factory=set)
    _replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- test controls ---------------------------------------------------------------------

    def fail_next(
        self, method: str, path_prefix: str, status: int = 500, name: str = "INTERNAL_SERVER_ERROR"
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(method, path_prefix, status, name))

    def forget_request_ids(self) -> None:
        """What 6 hours do at PayPal: repeated PayPal-Request-Ids are new requests again."""
        with self._lock:
            self._replies.clear()

    def revoke_tokens(self) -> None:
        """Every issued bearer token stops working (as after expiry)."""
        with self._lock:
            self._tokens.clear()

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/v1/notifications/certs/{CERT_NAME}"

    def orders_of_checkout(self, checkout_id: str) -> list[str]:
        """Independent of the gateway: every order whose purchase unit names the checkout."""
        with self._lock:
            found = [o for o in self.orders.values() if _unit(o).get("custom_id") == checkout_id]
            return [o["id"] for o in sorted(found, key=lambda o: o["_seq"])]

    def webhooks_of(self, order_id: str) -> list[SentWebhook]:
        with self._lock:
            return [w for w in self.sent_webhooks if order_id.encode() in w.body]

    # --- dispatch --------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any] | bytes | None]:
        url = urlsplit(raw_path)
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append((method, path))
            self.request_ids.append((method, path, headers.get("PayPal-Request-Id")))
            try:
                if method == "GET" and path == f"/v1/notifications/certs/{CERT_NAME}":
                    return 200, self.identity.cert_pem
                if path == "/v1/oauth2/token":
                    return 200, self._token(headers.get("Authorization", ""), body)
                if not path.startswith("/_test/"):
                    self._authenticate(headers.get("Authorization", ""))
                for fault in self._faults:
                    if fault.method == method and path.startswith(fault.path_prefix):
                        self._faults.remove(fault)
                        raise _ApiError(fault.status, fault.name, "injected failure")
                request_id = headers.get("PayPal-Request-Id")
                if method == "POST" and request_id and request_id in self._replies:
                    return self._replies[request_id]  # PayPal's idempotent replay
                try:
                    data = json.loads(body) if body else {}
                except ValueError as e:
                    raise _ApiError(
                        400, "INVALID_REQUEST", "body is not JSON", "MALFORMED_REQUEST_JSON"
                    ) from e
                try:
                    reply: tuple[int, dict[str, Any] | None] = self._route(
                        method, path, query, data
                    )
                except _ApiError as e:
                    reply = (e.status, e.body)
                if method == "POST" and request_id and reply[0] != 401:
                    self._replies[request_id] = reply
                return reply
            except _ApiError as e:
                return e.status, e.body

    def _token(self, header: str, body: bytes) -> dict[str, Any]:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if not hmac.compare_digest(header, f"Basic {expected}"):
            error = _ApiError(401, "invalid_client", "Client Authentication failed")
            error.body = {
                "error": "invalid_client",
                "error_description": "Client Authentication failed",
            }
            raise error
        if parse_qs(body.decode()).get("grant_type") != ["client_credentials"]:
            error = _ApiError(400, "unsupported_grant_type", "Grant Type is NULL")
            error.body = {
                "error": "unsupported_grant_type",
                "error_description": "Grant Type is NULL",
            }
            raise error
        token = "A21AA" + secrets.token_urlsafe(32)
        self._tokens.add(token)
        return {
            "scope": "https://uri.paypal.com/services/payments/payment",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-PEER",
            "expires_in": TOKEN_TTL_S,
            "nonce": _now() + secrets.token_hex(8),
        }

    def _authenticate(self, header: str) -> None:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            raise _ApiError(
                401,
                "AUTHENTICATION_FAILURE",
                "Authentication failed due to invalid authentication credentials or a missing "
                "Authorization header.",
            )

    def _route(
        self, method: str, path: str, query: dict[str, str], data: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        parts = path.strip("/").split("/")
        match method, parts:
            case "POST", ["v2", "checkout", "orders"]:
                return 201, self._create_order(data)
            case "GET", ["v2", "checkout", "orders", order_id]:
                return 200, self._public_order(self._order(order_id))
            case "POST", ["v2", "checkout", "orders", order_id, "authorize"]:
                return 201, self._authorize(self._order(order_id), data)
            case "GET", ["v2", "payments", "authorizations", auth_id]:
                return 200, dict(self._get(self.authorizations, auth_id))
            case "POST", ["v2", "payments", "authorizations", auth_id, "capture"]:
                return 201, self._capture(self._get(self.authorizations, auth_id), data)
            case "POST", ["v2", "payments", "authorizations", auth_id, "void"]:
                self._void(self._get(self.authorizations, auth_id))
                return 204, None
            case "GET", ["v2", "payments", "captures", capture_id]:
                return 200, dict(self._get(self.captures, capture_id))
            case "POST", ["v2", "payments", "captures", capture_id, "refund"]:
                return 201, self._refund(self._get(self.captures, capture_id), data)
            case "GET", ["v2", "payments", "refunds", refund_id]:
                return 200, dict(self._get(self.refunds, refund_id))
            case "POST", ["_test", "orders", order_id, "payer-action"]:
                return 200, self._payer_action(self._order(order_id), query.get("success"))
        raise _ApiError(
            404,
            "RESOURCE_NOT_FOUND",
            "The specified resource does not exist.",
            "INVALID_RESOURCE_ID",
        )

    # --- entities --------------------------------------------------------------------------

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise _ApiError(
                404,
                "RESOURCE_NOT_FOUND",
                "The specified resource does not exist.",
                "INVALID_RESOURCE_ID",
            )
        return order

    @staticmethod
    def _get(table: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
        item = table.get(key)
        if item is None:
            raise _ApiError(
                404,
                "RESOURCE_NOT_FOUND",
                "The specified resource does not exist.",
                "INVALID_RESOURCE_ID",
            )
        return item

    def _create_order(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("intent") not in ("AUTHORIZE", "CAPTURE"):
            raise _ApiError(
                400, "INVALID_REQUEST", "Request is not well-formed.", "MISSING_REQUIRED_PARAMETER"
            )
        units = data.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise _ApiError(
                400, "INVALID_REQUEST", "one purchase unit expected", "INVALID_PARAMETER_VALUE"
            )
        unit = units[0]
        try:
            from_paypal(unit.get("amount"))
        except ValueError as e:
            raise _ApiError(400, "INVALID_REQUEST", str(e), "INVALID_PARAMETER_VALUE") from e
        for name in ("custom_id", "invoice_id"):
            if len(str(unit.get(name) or "")) > 127:
                raise _ApiError(400, "INVALID_REQUEST", f"{name} too long", "INVALID_STRING_LENGTH")
        order_id = _id()
        order: dict[str, Any] = {
            "id": order_id,
            "intent": data["intent"],
            "status": "CREATED",
            "purchase_units": [
                {
                    "reference_id": unit.get("reference_id", "default"),
                    "amount": dict(unit["amount"]),
                    "custom_id": unit.get("custom_id"),
                    "invoice_id": unit.get("invoice_id"),
                    "payments": {"authorizations": [], "captures": [], "refunds": []},
                }
            ],
            "create_time": _now(),
            "_seq": len(self.orders),
            "_source": None,
        }
        self.orders[order_id] = order
        return self._public_order(order)

    def _authorize(self, order: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if order["status"] == "COMPLETED":
            raise _unprocessable("ORDER_ALREADY_AUTHORIZED", "Order already authorized.")
        if order["status"] == "VOIDED":
            raise _unprocessable("ORDER_COMPLETED_OR_VOIDED", "Order is voided.")
        if order["status"] == "PAYER_ACTION_REQUIRED":
            raise _unprocessable("PAYER_ACTION_REQUIRED", "Payer has not completed the action.")
        source = data.get("payment_source")
        if order["status"] == "APPROVED":
            outcome = "authorized"  # the payer finished what the source needed
        elif isinstance(source, dict):
            outcome = self._vault_outcome(source)
            order["_source"] = source
        else:
            raise _unprocessable("ORDER_NOT_APPROVED", "Payer has not yet approved the Order.")
        if outcome == "payer_action":
            order["status"] = "PAYER_ACTION_REQUIRED"
            raise _unprocessable("PAYER_ACTION_REQUIRED", "Payer needs to perform an action.")
        if outcome != "authorized":
            raise _unprocessable(outcome, "The instrument presented was declined.")
        unit = _unit(order)
        auth_id = _id()
        auth: dict[str, Any] = {
            "id": auth_id,
            "status": "CREATED",
            "amount": dict(unit["amount"]),
            "custom_id": unit.get("custom_id"),
            "invoice_id": unit.get("invoice_id"),
            "expiration_time": (dt.datetime.now(dt.UTC) + dt.timedelta(days=29)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "supplementary_data": {"related_ids": {"order_id": order["id"]}},
            "create_time": _now(),
            "links": self._links("authorizations", auth_id, ("capture", "void")),
        }
        self.authorizations[auth_id] = auth
        unit["payments"]["authorizations"].append(auth)
        order["status"] = "COMPLETED"
        self._emit("PAYMENT.AUTHORIZATION.CREATED", "authorization", auth)
        return self._public_order(order)

    @staticmethod
    def _vault_outcome(source: dict[str, Any]) -> str:
        kind = next(iter(source), None)
        spec = source.get(kind) if kind in ("card", "paypal") else None
        vault_id = spec.get("vault_id") if isinstance(spec, dict) else None
        number = ALIASES.get(str(vault_id), str(vault_id))
        if number not in TEST_VAULTS:
            raise _ApiError(
                422,
                "UNPROCESSABLE_ENTITY",
                "The specified vault id does not exist or does not belong to this merchant.",
                "PAYMENT_SOURCE_INFO_CANNOT_BE_VERIFIED",
            )
        return TEST_VAULTS[number]

    def _payer_action(self, order: dict[str, Any], success: str | None) -> dict[str, Any]:
        if order["status"] != "PAYER_ACTION_REQUIRED":
            raise _unprocessable("ORDER_NOT_APPROVED", f"order is {order['status']}")
        order["status"] = "APPROVED" if success == "true" else "VOIDED"
        if order["status"] == "APPROVED":
            self._emit("CHECKOUT.ORDER.APPROVED", "checkout-order", self._public_order(order))
        return self._public_order(order)

    def _capture(self, auth: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if auth["status"] == "VOIDED":
            raise _unprocessable(
                "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured."
            )
        if auth["status"] == "CAPTURED":
            raise _unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has already been captured."
            )
        authorized, currency = from_paypal(auth["amount"])
        captured = sum(
            from_paypal(c["amount"])[0] for c in self.captures.values() if c["_auth"] == auth["id"]
        )
        money = data.get("amount") or to_paypal(authorized - captured, currency)
        try:
            amount, asked_currency = from_paypal(money)
        except ValueError as e:
            raise _ApiError(400, "INVALID_REQUEST", str(e), "INVALID_PARAMETER_VALUE") from e
        if asked_currency != currency:
            raise _unprocessable(
                "CURRENCY_MISMATCH", "Currency of capture must match authorization."
            )
        if amount <= 0 or amount > authorized - captured:
            raise _unprocessable(
                "MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds the authorized amount."
            )
        order_id = auth["supplementary_data"]["related_ids"]["order_id"]
        capture_id = _id()
        capture: dict[str, Any] = {
            "id": capture_id,
            "status": "COMPLETED",
            "amount": to_paypal(amount, currency),
            "final_capture": bool(data.get("final_capture", False)),
            "custom_id": auth.get("custom_id"),
            "invoice_id": auth.get("invoice_id"),
            "supplementary_data": {
                "related_ids": {"order_id": order_id, "authorization_id": auth["id"]}
            },
            "create_time": _now(),
            "links": self._links(
                "captures", capture_id, ("refund",), up=("authorizations", auth["id"])
            ),
            "_auth": auth["id"],
        }
        self.captures[capture_id] = capture
        _unit(self.orders[order_id])["payments"]["captures"].append(capture)
        final = capture["final_capture"] or amount == authorized - captured
        auth["status"] = "CAPTURED" if final else "PARTIALLY_CAPTURED"
        self._emit("PAYMENT.CAPTURE.COMPLETED", "capture", _public(capture))
        return _public(capture)

    def _void(self, auth: dict[str, Any]) -> None:
        if auth["status"] == "VOIDED":
            raise _unprocessable("PREVIOUSLY_VOIDED", "Authorization has been previously voided.")
        if auth["status"] in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise _unprocessable(
                "AUTHORIZATION_ALREADY_CAPTURED", "A captured authorization cannot be voided."
            )
        auth["status"] = "VOIDED"
        self._emit("PAYMENT.AUTHORIZATION.VOIDED", "authorization", auth)

    def _refund(self, capture: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        captured, currency = from_paypal(capture["amount"])
        refunded = sum(
            from_paypal(r["amount"])[0]
            for r in self.refunds.values()
            if r["_capture"] == capture["id"]
        )
        if refunded >= captured:
            raise _unprocessable(
                "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded."
            )
        money = data.get("amount") or to_paypal(captured - refunded, currency)
        try:
            amount, asked_currency = from_paypal(money)
        except ValueError as e:
            raise _ApiError(400, "INVALID_REQUEST", str(e), "INVALID_PARAMETER_VALUE") from e
        if asked_currency != currency:
            raise _unprocessable("REFUND_CAPTURE_CURRENCY_MISMATCH", "Refund currency must match.")
        if amount <= 0 or amount > captured - refunded:
            raise _unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be at most the captured amount not yet refunded.",
            )
        refund_id = _id()
        total = refunded + amount
        refund: dict[str, Any] = {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": to_paypal(amount, currency),
            "invoice_id": data.get("invoice_id"),
            "custom_id": data.get("custom_id"),
            "seller_payable_breakdown": {"total_refunded_amount": to_paypal(total, currency)},
            "create_time": _now(),
            "links": self._links("refunds", refund_id, (), up=("captures", capture["id"])),
            "_capture": capture["id"],
        }
        self.refunds[refund_id] = refund
        order_id = capture["supplementary_data"]["related_ids"]["order_id"]
        _unit(self.orders[order_id])["payments"]["refunds"].append(refund)
        capture["status"] = "REFUNDED" if total == captured else "PARTIALLY_REFUNDED"
        self._emit("PAYMENT.CAPTURE.REFUNDED", "refund", _public(refund))
        return _public(refund)

    # --- representations --------------------------------------------------------------------

    def _links(
        self, kind: str, item_id: str, actions: tuple[str, ...], up: tuple[str, str] | None = None
    ) -> list[dict[str, str]]:
        base = f"{self.base_url}/v2/payments/{kind}/{item_id}"
        links = [{"href": base, "rel": "self", "method": "GET"}]
        links += [{"href": f"{base}/{a}", "rel": a, "method": "POST"} for a in actions]
        if up is not None:
            links.append(
                {
                    "href": f"{self.base_url}/v2/payments/{up[0]}/{up[1]}",
                    "rel": "up",
                    "method": "GET",
                }
            )
        return links

    def _public_order(self, order: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in order.items() if not k.startswith("_")}
        unit = dict(_unit(order))
        unit["payments"] = {
            kind: [_public(item) for item in items]
            for kind, items in unit["payments"].items()
            if items
        }
        if not unit["payments"]:
            del unit["payments"]
        out["purchase_units"] = [unit]
        base = f"{self.base_url}/v2/checkout/orders/{order['id']}"
        links = [{"href": base, "rel": "self", "method": "GET"}]
        if order["status"] == "PAYER_ACTION_REQUIRED":
            links.append(
                {
                    "href": f"{self.base_url}/checkoutnow?token={order['id']}",
                    "rel": "payer-action",
                    "method": "GET",
                }
            )
        if order["status"] in ("CREATED", "APPROVED"):
            links.append({"href": f"{base}/authorize", "rel": "authorize", "method": "POST"})
        out["links"] = links
        return out

    # --- webhooks --------------------------------------------------------------------------

    def _emit(self, event_type: str, resource_type: str, resource: dict[str, Any]) -> None:
        event_id = "WH-" + _id(17) + "-" + _id(17)
        body = json.dumps(
            {
                "id": event_id,
                "event_version": "1.0",
                "create_time": _now(),
                "resource_type": resource_type,
                "resource_version": "2.0",
                "event_type": event_type,
                "summary": event_type.replace(".", " ").lower(),
                "resource": _public(resource),
            }
        ).encode()
        headers = self.identity.sign(body, self.webhook_id, cert_url=self.cert_url)
        self.sent_webhooks.append(SentWebhook(event_id, event_type, body, headers))


def _unit(order: dict[str, Any]) -> dict[str, Any]:
    unit: dict[str, Any] = order["purchase_units"][0]
    return unit


def _public(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if not k.startswith("_")}


def _handler(peer: PayPalPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = peer.handle(self.command, self.path, self.headers, body)
            self.send_response(status)
            if answer is None:
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if isinstance(answer, bytes):
                raw, kind = answer, "application/x-pem-file"
            else:
                raw, kind = json.dumps(answer).encode(), "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Paypal-Debug-Id", _id(13).lower())
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_peer(
    client_id: str = "AeB-peer-client",
    client_secret: str | None = None,
    webhook_id: str = "WH-PEER-1",
) -> Iterator[PayPalPeer]:
    peer = PayPalPeer(
        client_id, client_secret or secrets.token_hex(16), webhook_id, signing_identity()
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    peer.base_url = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="paypal-peer", daemon=True
    )
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
