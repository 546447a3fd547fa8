"""Built-in tax calculator from a data file (adapters/tax/rates.json).

The embedded default, and the fallback when TaxJar is down. Lookup: the longest matching postal
prefix of the region, else the region (state), else the country; most specific wins. Rates are
basis points, fractional allowed ("862.5") because real rates like 8.625% need it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from adapters.tax.address import NormalizedAddress
from adapters.tax.port import (
    SOURCE_RATE_TABLE,
    TaxInputError,
    TaxLineAmount,
    TaxQuote,
    TaxRequest,
)
from adapters.tax.validation import validate_request

_BP = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    code: str  # e.g. "US-CA-900", "DE"
    rate_bp: Decimal
    shipping_taxable: bool


class RateTableCalculator:
    """Stateless after load; safe to share between threads."""

    def __init__(self, path: Path | None = None, *, source: str = SOURCE_RATE_TABLE) -> None:
        raw = (
            path.read_bytes()
            if path is not None
            else resources.files("adapters.tax").joinpath("rates.json").read_bytes()
        )
        self._countries: dict[str, Any] = json.loads(raw)["countries"]
        self._source = source
        # The file's hash is part of the cache key: editing rates invalidates cached quotes.
        self._provider_id = f"rate_table:{hashlib.sha256(raw).hexdigest()[:16]}"

    @property
    def provider_id(self) -> str:
        return self._provider_id

    def supports(self, country: str) -> bool:
        return country in self._countries

    def jurisdiction(self, address: NormalizedAddress) -> Jurisdiction:
        country = self._countries.get(address.country)
        if country is None:
            raise TaxInputError(f"tax: country {address.country} is not supported")
        regions: dict[str, Any] = country.get("regions", {})
        region = regions.get(address.state)
        if region is None:
            if country.get("requires_region"):
                raise TaxInputError(
                    f"tax: region {address.state!r} of {address.country} is not supported"
                )
            return Jurisdiction(
                address.country,
                Decimal(str(country["rate_bp"])),
                bool(country.get("shipping_taxable", False)),
            )
        code = f"{address.country}-{address.state}"
        entry = region
        postal = address.postal_code.replace(" ", "")
        prefixes: dict[str, Any] = region.get("postal_prefixes", {})
        matches = [p for p in prefixes if postal.startswith(p)]
        if matches:
            best = max(matches, key=len)
            code, entry = f"{code}-{best}", {**region, **prefixes[best]}
        return Jurisdiction(
            code, Decimal(str(entry["rate_bp"])), bool(entry.get("shipping_taxable", False))
        )

    def calculate(self, request: TaxRequest) -> TaxQuote:
        address = validate_request(request)
        where = self.jurisdiction(address)
        taxable = [(line.id, line.taxable_amount) for line in request.lines]
        if where.shipping_taxable and request.shipping_amount > 0:
            taxable.append(("shipping", request.shipping_amount))
        amounts = _allocate(taxable, where.rate_bp)
        return TaxQuote(
            amount=sum(amounts),
            currency=request.currency,
            source=self._source,
            breakdown=tuple(
                TaxLineAmount(line_id, base, tax)
                for (line_id, base), tax in zip(taxable, amounts, strict=True)
            ),
        )


def _allocate(taxable: list[tuple[str, int]], rate_bp: Decimal) -> list[int]:
    """Per-line tax in minor units that sums to the half-up rounded exact total.

    Rounding each line separately can drift from the total by a unit per line; instead floor every
    line and hand the remaining units to the largest fractional parts (ties: earlier line first).
    """
    exact = [Decimal(base) * rate_bp / _BP for _, base in taxable]
    total = int(sum(exact, Decimal(0)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    floors = [int(x.to_integral_value(rounding=ROUND_FLOOR)) for x in exact]
    by_fraction = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_fraction[: total - sum(floors)]:
        floors[i] += 1
    return floors
