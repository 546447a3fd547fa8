"""A local HTTP peer speaking EasyPost's documented shipment API.

- `POST /v2/shipments` `{"shipment": {to_address, from_address, parcel}}` -> 201 Shipment with
  `rates[]` (`id`, `object`, `carrier`, `service`, `rate` as a decimal string, `currency`,
  `delivery_days`, `shipment_id`) priced from the parcel weight (ounces).
- `POST /v2/shipments/{id}/buy` `{"rate": {"id"}}` -> 200 Shipment with `selected_rate`,
  `tracking_code`, `postage_label.label_url`.
- `GET /v2/shipments/{id or reference}` -> 200 Shipment | 404 (the reference "may be used in
  place of id", per EasyPost's docs; the latest shipment with it wins).
- Basic auth (API key as the user name); errors `{"error": {"code", "message", "errors"}}`
  with 401/404/422/5xx; buying a shipment twice is 422 SHIPMENT.POSTAGE.EXISTS.

Tests script failures, make it hang (released at teardown), lose answers ("lost": the request
takes effect but the connection closes before the response — an unknown outcome), and count
requests and purchases.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_peer import ScriptedPeer

# carrier, service, base price, per-ounce price, delivery days
SERVICES: list[tuple[str, str, Decimal, Decimal, int]] = [
    ("USPS", "GroundAdvantage", Decimal("5.40"), Decimal("0.05"), 5),
    ("USPS", "Priority", Decimal("8.70"), Decimal("0.07"), 3),
    ("USPS", "Express", Decimal("29.75"), Decimal("0.11"), 1),
    ("UPS", "Ground", Decimal("9.15"), Decimal("0.04"), 4),
    ("UPS", "NextDayAir", Decimal("41.10"), Decimal("0.13"), 1),
]
COUNTRIES = {"US", "CA", "MX", "DE", "FR", "GB", "NL", "AU", "JP", "IT", "ES", "BE", "AT"}
ERRORS: dict[int, tuple[str, str]] = {
    401: ("APIKEY.INACTIVE", "This api key is no longer active. Please use a different api key."),
    404: ("NOT_FOUND", "The requested resource could not be found."),
    422: ("ADDRESS.VERIFY.FAILURE", "Unable to verify address."),
    429: ("RATE_LIMITED", "You have made too many requests. Please try again later."),
    500: ("INTERNAL_SERVER_ERROR", "Something went wrong on our end."),
    502: ("BAD_GATEWAY", "Bad gateway."),
    503: ("SERVICE_UNAVAILABLE", "The service is temporarily unavailable."),
}


class EasyPostPeer(ScriptedPeer):
    def __init__(self, api_key: str = "EZTK_test_key", *, price_offset: str = "0") -> None:
        self.api_key = api_key
        self.price_offset = Decimal(price_offset)  # lets tests run peers with different prices
        self.currency = "USD"
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.shipments: dict[str, dict[str, Any]] = {}
        super().__init__()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _rates(self, shipment_id: str, ounces: Decimal) -> list[dict[str, Any]]:
        rates = []
        for carrier, service, base, per_oz, days in SERVICES:
            price = (base + per_oz * ounces + self.price_offset).quantize(
                Decimal("0.01"), ROUND_HALF_UP
            )
            rates.append(
                {
                    "id": f"rate_{uuid.uuid4().hex}",
                    "object": "Rate",
                    "mode": "test",
                    "carrier": carrier,
                    "service": service,
                    "rate": str(price),
                    "currency": self.currency,
                    "retail_rate": str(price),
                    "delivery_days": days,
                    "est_delivery_days": days,
                    "shipment_id": shipment_id,
                }
            )
        return rates

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        shipment = body.get("shipment") or {}
        to, parcel = shipment.get("to_address") or {}, shipment.get("parcel") or {}
        errors = [
            {"field": f"to_address.{f}", "message": "cannot be blank", "suggestion": None}
            for f in ("street1", "city", "zip", "country")
            if not to.get(f)
        ]
        if "weight" not in parcel or Decimal(str(parcel["weight"])) <= 0:
            errors.append(
                {"field": "parcel.weight", "message": "must be greater than 0", "suggestion": None}
            )
        if errors:
            return 422, {
                "error": {
                    "code": "SHIPMENT.INVALID_PARAMS",
                    "message": "Unable to create shipment, one or more parameters were invalid.",
                    "errors": errors,
                }
            }
        if to.get("country") not in COUNTRIES:
            return 422, {
                "error": {
                    "code": "ADDRESS.COUNTRY.INVALID",
                    "message": f"Invalid country {to.get('country')!r}",
                    "errors": [
                        {
                            "field": "to_address.country",
                            "message": "is not a valid country",
                            "suggestion": None,
                        }
                    ],
                }
            }
        if to.get("zip") == "00000":  # an address the carrier cannot verify
            return 422, {
                "error": {
                    "code": "ADDRESS.VERIFY.FAILURE",
                    "message": "Address not found",
                    "errors": [
                        {"field": "address", "message": "Address not found", "suggestion": None}
                    ],
                }
            }
        shipment_id = f"shp_{uuid.uuid4().hex}"
        record = {
            "id": shipment_id,
            "object": "Shipment",
            "mode": "test",
            "reference": shipment.get("reference"),
            "to_address": to,
            "from_address": shipment.get("from_address"),
            "parcel": parcel,
            "rates": self._rates(shipment_id, Decimal(str(parcel["weight"]))),
            "messages": [],
            "selected_rate": None,
            "tracking_code": None,
            "postage_label": None,
        }
        with self._lock:
            self.shipments[shipment_id] = record
        return 201, record

    def _buy(self, shipment_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            record = self.shipments.get(shipment_id)
        if record is None:
            return 404, _error(404)
        if record["selected_rate"] is not None:
            return 422, {
                "error": {
                    "code": "SHIPMENT.POSTAGE.EXISTS",
                    "message": "Postage already exists for this shipment.",
                    "errors": [],
                }
            }
        rate_id = (body.get("rate") or {}).get("id")
        rate = next((r for r in record["rates"] if r["id"] == rate_id), None)
        if rate is None:
            return 422, {
                "error": {
                    "code": "SHIPMENT.RATE.INVALID",
                    "message": "Rate not found for this shipment",
                    "errors": ["rate.id is invalid"],
                }
            }
        record.update(
            selected_rate=rate,
            tracking_code=f"9400{uuid.uuid4().int % 10**18:018d}",
            postage_label={
                "object": "PostageLabel",
                "label_url": f"https://labels.example/{shipment_id}.png",
            },
        )
        return 200, record

    def _find(self, id_or_reference: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            record = self.shipments.get(id_or_reference) or next(
                (
                    r
                    for r in reversed(self.shipments.values())
                    if r.get("reference") == id_or_reference
                ),
                None,
            )
        return (200, record) if record is not None else (404, _error(404))

    @property
    def purchases(self) -> int:
        with self._lock:
            return sum(1 for r in self.shipments.values() if r["selected_rate"] is not None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve({})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._serve(json.loads(raw or b"{}"))

            def _serve(self, body: dict[str, Any]) -> None:
                with peer._lock:
                    peer.requests.append((self.path, body))
                expected = "Basic " + base64.b64encode(f"{peer.api_key}:".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._send(401, _error(401))
                    return
                outcome = peer._next_outcome()
                if outcome == "hang":
                    peer.release.wait(30)
                    return
                if isinstance(outcome, int):
                    self._send(outcome, _error(outcome))
                    return
                parts = self.path.strip("/").split("/")
                if self.command == "GET" and len(parts) == 3 and parts[:2] == ["v2", "shipments"]:
                    answer = peer._find(parts[2])
                elif parts == ["v2", "shipments"]:
                    answer = peer._create(body)
                elif len(parts) == 4 and parts[:2] == ["v2", "shipments"] and parts[3] == "buy":
                    answer = peer._buy(parts[2], body)
                else:
                    answer = (404, _error(404))
                if outcome == "lost":
                    self.close_connection = True  # done, but the caller never hears of it
                    return
                self._send(*answer)

        return Handler


def _error(status: int) -> dict[str, Any]:
    code, message = ERRORS[status]
    return {"error": {"code": code, "message": message, "errors": []}}


@contextmanager
def running_peer(
    api_key: str = "EZTK_test_key",
    *,
    price_offset: str = "0",
) -> Iterator[EasyPostPeer]:
    peer = EasyPostPeer(api_key, price_offset=price_offset).start()
    try:
        yield peer
    finally:
        peer.stop()
