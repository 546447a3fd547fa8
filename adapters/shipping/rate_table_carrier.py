"""Built-in carrier priced from adapters/shipping/rates.json (the embedded default).

Prices by destination zone, service level, total weight and quantity. No network, so it always
answers (or rejects the input); `create_shipment` records a manual-fulfilment shipment with a
deterministic id, so a retried call yields the same shipment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from adapters.shipping.port import (
    SERVICE_LEVELS,
    FoundShipment,
    Rate,
    Shipment,
    ShippingInputError,
    ShippingProviderError,
    ShippingRequest,
)
from adapters.shipping.validation import validate_request


class RateTableCarrier:
    def __init__(self, path: Path | None = None) -> None:
        raw = (
            path.read_bytes()
            if path is not None
            else resources.files("adapters.shipping").joinpath("rates.json").read_bytes()
        )
        data: dict[str, Any] = json.loads(raw)
        self._name: str = data["carrier"]
        self._max_weight: int = data["max_weight_grams"]
        self._rates: dict[str, dict[str, Any]] = data["rates"]
        self._zone_of = {
            country: zone for zone, countries in data["zones"].items() for country in countries
        }

    @property
    def name(self) -> str:
        return self._name

    @property
    def countries(self) -> frozenset[str]:
        return frozenset(self._zone_of)

    def quote(self, request: ShippingRequest) -> list[Rate]:
        to = validate_request(request)
        zone = self._zone_of.get(to.country)
        if zone is None:
            raise ShippingInputError(f"shipping: country {to.country} is not supported")
        weight = request.total_weight_grams
        if weight > self._max_weight:
            raise ShippingInputError(
                f"shipping: parcel of {weight} g exceeds the {self._max_weight} g limit"
            )
        extra_kg = max(0, -(-(weight - 1000) // 1000))  # started kg above the first
        extra_items = request.total_quantity - 1
        rates = []
        for level, entry in sorted(self._rates[zone].items()):
            price = entry["prices"].get(request.currency)
            if level not in SERVICE_LEVELS or price is None:
                continue
            amount = price["base"] + price["per_kg"] * extra_kg + price["per_item"] * extra_items
            rates.append(
                Rate(self._name, level, amount, request.currency, entry["est_days"], service=level)
            )
        if not rates:
            raise ShippingInputError(f"shipping: no {request.currency} prices for {to.country}")
        return rates

    def create_shipment(
        self, request: ShippingRequest, rate: Rate, idempotency_key: str
    ) -> Shipment:
        return self._shipment(idempotency_key, self._own_rate(request, rate))

    # --- LabelProvider (adapters/shipping/shipments.py), so TrackedShipments can drive it ------

    def open_shipment(self, request: ShippingRequest, rate: Rate, reference: str) -> Rate:
        """Our own rate for `rate`'s service level, with `reference` as its handle: buying it
        again (a retry) yields the same deterministic shipment."""
        ours = self._own_rate(request, rate)
        return dataclasses.replace(ours, quote_ref=f"{reference}/{ours.service_level}")

    def buy(self, rate: Rate) -> Shipment:
        if not rate.quote_ref or "/" not in rate.quote_ref:
            raise ShippingProviderError(f"{self._name}: no rate to buy", retryable=False)
        return self._shipment(rate.quote_ref.rsplit("/", 1)[0], rate)

    def find(self, id_or_reference: str, currency: str) -> FoundShipment | None:
        # Nothing is held anywhere: "buying" again is a pure function of the reference, so
        # TrackedShipments re-opening and re-buying after a crash gives the same shipment.
        return None

    def _own_rate(self, request: ShippingRequest, rate: Rate) -> Rate:
        """Our price for `rate`'s service level (the saga remembers only carrier + level)."""
        ours = next((r for r in self.quote(request) if r.service_level == rate.service_level), None)
        if ours is None:
            raise ShippingInputError(
                f"shipping: {self._name} has no {rate.service_level} service "
                f"to {request.to_address.country}"
            )
        return ours

    def _shipment(self, key: str, rate: Rate) -> Shipment:
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        return Shipment(
            f"{self._name}_{digest}",
            self._name,
            rate.service_level,
            rate.amount,
            rate.currency,
            tracking_code=None,  # manual fulfilment: the warehouse prints and tracks it
            label_url=None,
        )
