"""The shipping port: quotes from a carrier (or aggregator), and buying the shipment later.

Money is integer minor units of `currency`; weights are integer grams. Providers raise
`ShippingError` subclasses; `quoting.quote_best` decides what a failure means for the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

STANDARD = "standard"
EXPRESS = "express"
SERVICE_LEVELS: frozenset[str] = frozenset({STANDARD, EXPRESS})


@dataclass(frozen=True, slots=True)
class ShippingAddress:
    line1: str
    city: str
    state: str
    postal_code: str
    country: str  # ISO-3166 alpha-2


@dataclass(frozen=True, slots=True)
class ShippingItem:
    sku: str
    quantity: int
    unit_amount: int  # minor units (customs value / insurance)
    weight_grams: int  # per unit


@dataclass(frozen=True, slots=True)
class ShippingRequest:
    currency: str
    items: tuple[ShippingItem, ...]
    to_address: ShippingAddress
    reference: str = ""  # e.g. checkout id; shown in the provider's dashboard

    @property
    def total_weight_grams(self) -> int:
        return sum(i.quantity * i.weight_grams for i in self.items)

    @property
    def total_quantity(self) -> int:
        return sum(i.quantity for i in self.items)


@dataclass(frozen=True, slots=True)
class Rate:
    carrier: str
    service_level: str  # STANDARD | EXPRESS
    amount: int  # minor units
    currency: str
    est_days: int | None
    service: str = ""  # the provider's own service name ("Priority", "NextDayAir")
    quote_ref: str | None = None  # provider handle to buy exactly this rate, while it is valid


@dataclass(frozen=True, slots=True)
class Shipment:
    shipment_id: str
    carrier: str
    service_level: str
    amount: int
    currency: str
    tracking_code: str | None
    label_url: str | None


@dataclass(frozen=True, slots=True)
class FoundShipment:
    """A shipment the provider already holds (looked up by id or by our reference)."""

    shipment_id: str
    rates: tuple[Rate, ...]  # with quote_refs, to buy one of them
    purchased: Shipment | None  # set once a label was bought


def match_rate(rates: list[Rate] | tuple[Rate, ...], wanted: Rate) -> Rate | None:
    """The cheapest of `rates` for the carrier and service (or service level) of `wanted`."""

    def same_service(r: Rate) -> bool:
        if wanted.service:
            return r.service == wanted.service
        return r.service_level == wanted.service_level

    same = [r for r in rates if r.carrier == wanted.carrier and same_service(r)]
    return min(same, key=lambda r: r.amount) if same else None


class ShippingError(Exception):
    retryable: bool = False

    def __init__(self, reason: str, *, retryable: bool | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if retryable is not None:
            self.retryable = retryable


class ShippingInputError(ShippingError):
    """The request cannot be shipped as asked (bad address, no items, unsupported country)."""

    retryable = False


class ShippingProviderError(ShippingError):
    """The provider did not answer usefully (down, timed out, throttled, misconfigured)."""

    retryable = True


@runtime_checkable
class ShippingProvider(Protocol):
    @property
    def name(self) -> str: ...

    def quote(self, request: ShippingRequest) -> list[Rate]: ...

    def create_shipment(
        self, request: ShippingRequest, rate: Rate, idempotency_key: str
    ) -> Shipment:
        """Buy `rate` (after the checkout completed). Without a `quote_ref` the provider
        re-quotes and buys its rate for the same carrier and service."""
        ...
