"""The tax port: what the saga needs from any tax calculator, in our own types.

Money is integer minor units of `currency`; vendor decimals never leave the implementation.
A calculator either returns a `TaxQuote` or raises a `TaxError` saying whether retrying can help.
A zero `TaxQuote.amount` always means "no tax is due" — a provider failure is an exception, never
a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Which calculator produced a quote; recorded on the order (TaxCalculated.source).
SOURCE_TAXJAR = "taxjar"
SOURCE_RATE_TABLE = "rate_table"
SOURCE_RATE_TABLE_FALLBACK = "rate_table_fallback"


@dataclass(frozen=True, slots=True)
class TaxAddress:
    line1: str
    city: str
    state: str
    postal_code: str
    country: str  # ISO-3166 alpha-2


@dataclass(frozen=True, slots=True)
class TaxLine:
    id: str  # unique within the request; echoed in the breakdown
    sku: str
    quantity: int
    unit_amount: int  # minor units, per unit
    discount: int = 0  # minor units, for the whole line
    product_tax_code: str | None = None

    @property
    def taxable_amount(self) -> int:
        return self.quantity * self.unit_amount - self.discount


@dataclass(frozen=True, slots=True)
class TaxRequest:
    currency: str
    lines: tuple[TaxLine, ...]
    to_address: TaxAddress
    # Shipping is quoted in parallel with tax, so the saga sends 0 today; the port keeps the field
    # so a later "tax after shipping" flow needs no port change.
    shipping_amount: int = 0


@dataclass(frozen=True, slots=True)
class TaxLineAmount:
    line_id: str  # a TaxLine.id, or "shipping"
    taxable_amount: int
    tax_amount: int


@dataclass(frozen=True, slots=True)
class TaxQuote:
    amount: int  # minor units; the total to collect
    currency: str
    source: str  # SOURCE_* above
    breakdown: tuple[TaxLineAmount, ...] = field(default=())


class TaxError(Exception):
    """Base of every tax failure. `retryable` tells the saga whether the same step may succeed."""

    retryable: bool = False

    def __init__(self, reason: str, *, retryable: bool | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if retryable is not None:
            self.retryable = retryable


class TaxInputError(TaxError):
    """The request itself is wrong (unsupported country, malformed postal code, bad lines).

    Permanent, and never a reason to fall back to another calculator: it would be wrong there too.
    """

    retryable = False


class TaxProviderError(TaxError):
    """The provider could not answer (down, throttled, timed out, breaker open, misconfigured).

    Eligible for the fallback policy. This base class is used directly for failures retrying cannot
    fix (a rejected API key); transient ones are `TaxProviderUnavailable`.
    """

    retryable = False


class TaxProviderUnavailable(TaxProviderError):
    """Transient provider failure: 5xx, 429, timeout, connection error, open breaker. Retried."""

    retryable = True


@runtime_checkable
class TaxCalculator(Protocol):
    @property
    def provider_id(self) -> str:
        """Identifies the provider *and* the configuration that shapes its answers (cache key)."""
        ...

    def calculate(self, request: TaxRequest) -> TaxQuote: ...
