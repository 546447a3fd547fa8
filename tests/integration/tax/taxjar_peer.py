"""A local HTTP peer speaking TaxJar's documented `POST /v2/taxes` contract.

Request: bearer auth; JSON order with to_*/from_* address fields, `shipping` (required),
`amount`, `line_items[{id, quantity, unit_price, discount, product_tax_code}]`,
`nexus_addresses[{id, country, zip, state, city, street}]`.
Response: `{"tax": {"amount_to_collect", "rate", "taxable_amount", "has_nexus",
"freight_taxable", "breakdown": {..., "shipping": {...}, "line_items": [...]}}}` with decimal
numbers, or an error `{"error", "detail", "status"}` with 400/401/429/500/503.

It has its own small rate table (independent of adapters/tax/rates.json) and computes like
TaxJar: per-line tax rounded to cents, total rounded half-up. Tests script failures, make it
hang, and read how many requests reached it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_peer import ScriptedPeer

CENT = Decimal("0.01")

# (country, state, zip prefix) -> combined rate; most specific wins.
RATES: dict[tuple[str, ...], Decimal] = {
    ("US", "CA"): Decimal("0.0725"),
    ("US", "CA", "900"): Decimal("0.095"),
    ("US", "NY"): Decimal("0.04"),
    ("US", "NY", "100"): Decimal("0.08875"),
    ("US", "TX"): Decimal("0.0625"),
    ("US", "TX", "787"): Decimal("0.0825"),
    ("US", "OR"): Decimal("0"),
    ("US", "WA"): Decimal("0.065"),
    ("US", "WA", "981"): Decimal("0.1025"),
    ("DE",): Decimal("0.19"),
    ("FR",): Decimal("0.20"),
    ("GB",): Decimal("0.20"),
    ("NL",): Decimal("0.21"),
}
FREIGHT_TAXABLE = {("US", "NY"), ("US", "TX"), ("US", "WA"), ("DE",), ("FR",), ("GB",), ("NL",)}
US_ZIP_STATE = {"9": "CA", "1": "NY", "7": "TX", "97": "OR", "98": "WA"}  # crude zip -> state

ERRORS: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "Your request format is bad."),
    401: ("Unauthorized", "Not authorized for route 'POST /v2/taxes'"),
    429: ("Too Many Requests", "You're requesting too many resources! Slow down!"),
    500: ("Internal Server Error", "We had a problem with our server. Try again later."),
    503: ("Service Unavailable", "We're temporarily offline for maintenance. Try again later."),
}


def dumps(value: Any) -> str:
    """JSON with Decimals as number literals, like TaxJar's own output (no float artefacts)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value != 0 else "0.0"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


class BadOrder(Exception):
    pass


def _rate(country: str, state: str, zip_code: str) -> tuple[Decimal, bool]:
    keys = [
        k
        for k in RATES
        if k[0] == country
        and (len(k) == 1 or k[1] == state)
        and (len(k) < 3 or zip_code.startswith(k[2]))
    ]
    if not keys:
        raise BadOrder(
            f"to_state {state} is not supported for to_country {country}"
            if country == "US"
            else f"to_country {country} is not supported"
        )
    best = max(keys, key=len)
    return RATES[best], best[:2] in FREIGHT_TAXABLE or best[:1] in FREIGHT_TAXABLE


def compute(order: dict[str, Any]) -> dict[str, Any]:
    for field in ("to_country", "shipping"):
        if field not in order:
            raise BadOrder(f"{field} is missing")
    country, state = order["to_country"], order.get("to_state", "")
    zip_code = str(order.get("to_zip", "")).replace(" ", "")
    if country == "US":
        expected = next(
            (
                s
                for p, s in sorted(US_ZIP_STATE.items(), key=lambda kv: -len(kv[0]))
                if zip_code.startswith(p)
            ),
            None,
        )
        if expected != state:
            raise BadOrder(f"to_zip {zip_code} is not used within to_state {state}")
    rate, freight_taxable = _rate(country, state, zip_code)
    nexus = order.get("nexus_addresses")
    has_nexus = not nexus or any(
        n.get("country") == country and (country != "US" or n.get("state") == state) for n in nexus
    )
    shipping = Decimal(order["shipping"])
    lines = order.get("line_items") or []
    if not has_nexus:
        return {
            "tax": {
                "order_total_amount": sum((_taxable(li) for li in lines), shipping),
                "shipping": shipping,
                "taxable_amount": Decimal(0),
                "amount_to_collect": Decimal(0),
                "rate": Decimal(0),
                "has_nexus": False,
                "freight_taxable": freight_taxable,
                "tax_source": None,
            }
        }
    items, exact_total, taxable_total = [], Decimal(0), Decimal(0)
    for li in lines:
        taxable = _taxable(li)
        exact = taxable * rate
        exact_total += exact
        taxable_total += taxable
        items.append(
            {
                "id": li["id"],
                "taxable_amount": taxable,
                "tax_collectable": exact.quantize(CENT, ROUND_HALF_UP),
                "combined_tax_rate": rate,
            }
        )
    ship_taxable = shipping if freight_taxable else Decimal(0)
    ship_exact = ship_taxable * rate
    exact_total += ship_exact
    amount = exact_total.quantize(CENT, ROUND_HALF_UP)
    return {
        "tax": {
            "order_total_amount": taxable_total + shipping,
            "shipping": shipping,
            "taxable_amount": taxable_total + ship_taxable,
            "amount_to_collect": amount,
            "rate": rate,
            "has_nexus": True,
            "freight_taxable": freight_taxable,
            "tax_source": "destination",
            "jurisdictions": {"country": country, "state": state},
            "breakdown": {
                "taxable_amount": taxable_total + ship_taxable,
                "tax_collectable": amount,
                "combined_tax_rate": rate,
                "shipping": {
                    "taxable_amount": ship_taxable,
                    "tax_collectable": ship_exact.quantize(CENT, ROUND_HALF_UP),
                    "combined_tax_rate": rate,
                },
                "line_items": items,
            },
        }
    }


def _taxable(li: dict[str, Any]) -> Decimal:
    if int(li["quantity"]) <= 0:
        raise BadOrder(f"line_items[{li['id']}].quantity must be positive")
    return int(li["quantity"]) * Decimal(li["unit_price"]) - Decimal(li.get("discount", 0))


class TaxJarPeer(ScriptedPeer):
    def __init__(self, api_key: str = "test-taxjar-key") -> None:
        self.api_key = api_key
        self.bodies: list[dict[str, Any]] = []
        self.raw_bodies: list[str] = []
        super().__init__()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.raw_bodies)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, detail: str | None = None) -> None:
                error, default = ERRORS[status]
                self._send(status, {"error": error, "detail": detail or default, "status": status})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with peer._lock:
                    peer.raw_bodies.append(raw)
                if self.path != "/v2/taxes":
                    self._send(
                        404, {"error": "Not Found", "detail": "No such route", "status": 404}
                    )
                    return
                if self.headers.get("Authorization") != f"Bearer {peer.api_key}":
                    self._error(401)
                    return
                outcome = peer._next_outcome()
                if outcome == "hang":
                    peer.release.wait(30)
                    return
                if outcome == "garbage":  # a 200 without amount_to_collect
                    self._send(200, {"tax": {"rate": Decimal("0.0725")}})
                    return
                if isinstance(outcome, int):
                    self._error(outcome)
                    return
                try:
                    order = json.loads(raw, parse_float=Decimal)
                    with peer._lock:
                        peer.bodies.append(order)
                    self._send(200, compute(order))
                except BadOrder as e:
                    self._error(400, str(e))
                except (ValueError, KeyError, TypeError) as e:
                    self._error(400, f"Your request format is bad: {e!r}")

        return Handler


@contextmanager
def running_peer(api_key: str = "test-taxjar-key") -> Iterator[TaxJarPeer]:
    peer = TaxJarPeer(api_key).start()
    try:
        yield peer
    finally:
        peer.stop()
