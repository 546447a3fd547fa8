"""EasyPost (shipping aggregator) over its documented HTTP API, with httpx.

- `POST /v2/shipments` `{"shipment": {to_address, from_address, parcel}}` -> a Shipment whose
  `rates[]` carry `carrier`, `service`, `rate` (a decimal string), `currency`, `delivery_days`.
- `POST /v2/shipments/{id}/buy` `{"rate": {"id"}}` -> the Shipment with `tracking_code`,
  `postage_label.label_url`, `selected_rate`.
- `GET /v2/shipments/{id}`; a shipment's `reference` "may be used in place of id in other API
  endpoints" (EasyPost docs), which is how an unrecorded purchase attempt is found again.
- Basic auth with the API key as user name. Errors: `{"error": {"code", "message", "errors"}}`.

Every call goes through one pybreaker breaker per client: a dead aggregator fails fast instead
of being asked on every quote. Input errors (400/422) and "postage already exists" are answers,
not outages, and do not count towards opening it.

Rate strings are converted with Decimal (never float). Parcel weight is ounces, the API's unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

import httpx
import pybreaker

from adapters.money import MoneyError, to_minor
from adapters.resilience import CircuitBreakerError, make_breaker
from adapters.shipping.port import (
    EXPRESS,
    STANDARD,
    FoundShipment,
    Rate,
    Shipment,
    ShippingAddress,
    ShippingError,
    ShippingInputError,
    ShippingProviderError,
    ShippingRequest,
    match_rate,
)
from adapters.shipping.validation import validate_request

GRAMS_PER_OUNCE = Decimal("28.349523125")

# (carrier, service) -> our service level; anything else is classified by delivery days.
DEFAULT_SERVICE_LEVELS: Mapping[tuple[str, str], str] = {
    ("USPS", "GroundAdvantage"): STANDARD,
    ("USPS", "Priority"): STANDARD,
    ("USPS", "Express"): EXPRESS,
    ("UPS", "Ground"): STANDARD,
    ("UPS", "2ndDayAir"): EXPRESS,
    ("UPS", "NextDayAir"): EXPRESS,
    ("FedEx", "FEDEX_GROUND"): STANDARD,
    ("FedEx", "FEDEX_2_DAY"): EXPRESS,
    ("FedEx", "STANDARD_OVERNIGHT"): EXPRESS,
}


class EasyPostClient:
    def __init__(
        self,
        api_key: str,
        *,
        from_address: ShippingAddress,
        base_url: str = "https://api.easypost.com",
        timeout_s: float = 3.0,
        service_levels: Mapping[tuple[str, str], str] = DEFAULT_SERVICE_LEVELS,
        transport: httpx.BaseTransport | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        self._from = from_address
        self._breaker = breaker or make_breaker("easypost")
        # Answers about the request, not outages: they must never open the breaker.
        self._breaker.add_excluded_exceptions(ShippingInputError, PostageExists)
        self._levels = dict(service_levels)
        self._http = httpx.Client(
            base_url=base_url,
            auth=(api_key, ""),
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": "checkout-saga/easypost"},
        )

    @property
    def name(self) -> str:
        return "easypost"

    def close(self) -> None:
        self._http.close()

    def quote(self, request: ShippingRequest) -> list[Rate]:
        shipment = self._create_shipment(request)
        return self._rates(shipment, request.currency)

    def create_shipment(
        self, request: ShippingRequest, rate: Rate, idempotency_key: str
    ) -> Shipment:
        """Buy `rate`; re-quote when its quote_ref is gone. EasyPost has no idempotency header:
        `idempotency_key` becomes the shipment reference, and `TrackedShipments`
        (adapters/shipping/shipments.py) reconciles by it before any second purchase."""
        return self.buy(self.open_shipment(request, rate, idempotency_key))

    def open_shipment(self, request: ShippingRequest, rate: Rate, reference: str) -> Rate:
        """The rate to buy, with its quote_ref: `rate` itself when it has one, else the matching
        rate of a new shipment created with `reference`."""
        if rate.quote_ref:
            return rate
        shipment = self._create_shipment(request, reference=reference)
        chosen = match_rate(self._rates(shipment, request.currency), rate)
        if chosen is None:
            wanted = rate.service or rate.service_level
            raise ShippingProviderError(
                f"easypost no longer offers {rate.carrier} {wanted}", retryable=False
            )
        return chosen

    def buy(self, rate: Rate) -> Shipment:
        """Buy the label for `rate.quote_ref`. Buying a shipment that already has postage (our
        earlier attempt, whose answer was lost) returns that purchase instead of failing."""
        if not rate.quote_ref or "/" not in rate.quote_ref:
            raise ShippingProviderError("easypost: no rate to buy", retryable=False)
        shipment_id, rate_id = rate.quote_ref.split("/", 1)
        try:
            bought = self._post(f"/v2/shipments/{shipment_id}/buy", {"rate": {"id": rate_id}})
        except PostageExists:
            found = self.find(shipment_id, rate.currency)
            if found is None or found.purchased is None:
                raise ShippingProviderError(
                    f"easypost says {shipment_id} has postage but does not show it"
                ) from None
            return found.purchased
        purchased = self._purchased(bought)
        if purchased is None:
            raise ShippingProviderError("easypost returned an unreadable purchase: no rate")
        return purchased

    def find(self, id_or_reference: str, currency: str) -> FoundShipment | None:
        """A shipment by id or by the reference we created it with; None when there is none."""
        shipment = self._get(f"/v2/shipments/{id_or_reference}")
        if shipment is None:
            return None
        try:
            rates = tuple(self._rates(shipment, currency))
        except ShippingProviderError:
            rates = ()  # a bought shipment may list no rates we can read; it needs none
        return FoundShipment(str(shipment.get("id")), rates, self._purchased(shipment))

    def _purchased(self, shipment: Mapping[str, Any]) -> Shipment | None:
        selected = shipment.get("selected_rate")
        if not selected:
            return None
        try:
            label = shipment.get("postage_label") or {}
            carrier, service = str(selected["carrier"]), str(selected["service"])
            return Shipment(
                shipment_id=str(shipment["id"]),
                carrier=carrier,
                service_level=self._level(carrier, service, selected.get("delivery_days")),
                amount=to_minor(str(selected["rate"]), str(selected["currency"])),
                currency=str(selected["currency"]),
                tracking_code=shipment.get("tracking_code"),
                label_url=label.get("label_url"),
            )
        except (KeyError, TypeError, AttributeError, MoneyError) as e:
            raise ShippingProviderError(f"easypost returned an unreadable purchase: {e!r}") from e

    # --- wire ----------------------------------------------------------------------------

    def _create_shipment(self, request: ShippingRequest, reference: str = "") -> dict[str, Any]:
        to = validate_request(request)
        grams = max(request.total_weight_grams, 1)
        ounces = (Decimal(grams) / GRAMS_PER_OUNCE).quantize(Decimal("0.1"), ROUND_CEILING)
        body = {
            "shipment": {
                "to_address": {
                    "street1": request.to_address.line1,
                    "city": request.to_address.city,
                    "state": to.state,
                    "zip": to.postal_code,
                    "country": to.country,
                },
                "from_address": {
                    "street1": self._from.line1,
                    "city": self._from.city,
                    "state": self._from.state,
                    "zip": self._from.postal_code,
                    "country": self._from.country,
                },
                # weight is not money: a float is the API's own type for it
                "parcel": {"weight": float(ounces)},
                "reference": reference or request.reference,
            }
        }
        return self._post("/v2/shipments", body)

    def _rates(self, shipment: Mapping[str, Any], currency: str) -> list[Rate]:
        try:
            raw_rates = shipment["rates"]
            shipment_id = str(shipment["id"])
        except (KeyError, TypeError) as e:
            raise ShippingProviderError(f"easypost returned no shipment: {e!r}") from e
        rates = []
        for r in raw_rates or ():
            try:
                if r["currency"] != currency:
                    continue  # we never convert currencies at quote time
                carrier, service = str(r["carrier"]), str(r["service"])
                days = r.get("delivery_days")
                rates.append(
                    Rate(
                        carrier,
                        self._level(carrier, service, days),
                        to_minor(str(r["rate"]), currency),
                        currency,
                        int(days) if days is not None else None,
                        service=service,
                        quote_ref=f"{shipment_id}/{r['id']}",
                    )
                )
            except (KeyError, TypeError, ValueError, MoneyError):
                continue  # one unreadable rate must not sink the others
        if not rates:
            raise ShippingProviderError(f"easypost offered no usable {currency} rates")
        return rates

    def _level(self, carrier: str, service: str, days: Any) -> str:
        level = self._levels.get((carrier, service))
        if level is not None:
            return level
        return EXPRESS if isinstance(days, int) and days <= 2 else STANDARD

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result = self._through_breaker(lambda: self._send("POST", path, body))
        assert result is not None  # only GET answers "not found" with None
        return result

    def _get(self, path: str) -> dict[str, Any] | None:
        return self._through_breaker(lambda: self._send("GET", path, None))

    def _through_breaker(self, call: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] | None = self._breaker.call(call)
        except CircuitBreakerError as e:
            raise ShippingProviderError(f"easypost circuit open, failing fast: {e}") from e
        return result

    def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TimeoutException as e:
            raise ShippingProviderError(f"easypost timed out: {e!r}") from e
        except httpx.HTTPError as e:
            raise ShippingProviderError(f"easypost unreachable: {e!r}") from e
        if response.status_code in (200, 201):
            try:
                data = response.json()
            except ValueError as e:
                raise ShippingProviderError("easypost returned invalid JSON") from e
            if not isinstance(data, dict):
                raise ShippingProviderError("easypost returned an unexpected body")
            return data
        if method == "GET" and response.status_code == 404:
            return None  # "no such shipment" is an answer, not a failure
        raise _error_for(response)


class PostageExists(ShippingProviderError):
    """The shipment already has a label: our own earlier purchase, whose answer was lost."""


def _error_for(response: httpx.Response) -> ShippingError:
    code, message = "", ""
    try:
        error = response.json().get("error") or {}
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        # documented as FieldError objects *or* plain strings
        details = "; ".join(
            f"{e.get('field')}: {e.get('message')}" if isinstance(e, dict) else str(e)
            for e in error.get("errors") or ()
        )
        if details:
            message = f"{message} ({details})"
    except (ValueError, AttributeError):
        pass
    status = response.status_code
    what = f"easypost {status} {code}: {message}".rstrip(": ")
    if code == "SHIPMENT.POSTAGE.EXISTS":
        return PostageExists(what, retryable=False)
    if status in (400, 422):  # the request (address, parcel) cannot be processed as sent
        return ShippingInputError(f"shipping: {message or code or 'rejected by EasyPost'}")
    if status == 429 or status >= 500:
        return ShippingProviderError(what)
    return ShippingProviderError(what, retryable=False)  # 401/402/403/404: our account or call
