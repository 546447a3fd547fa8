"""Request checks every calculator runs first, so bad input fails the same way everywhere."""

from __future__ import annotations

from adapters.money import MoneyError, exponent
from adapters.tax.address import AddressError, NormalizedAddress, normalize_address
from adapters.tax.port import TaxInputError, TaxRequest


def validate_request(request: TaxRequest) -> NormalizedAddress:
    """Raise TaxInputError with a clear reason, or return the normalised destination."""
    try:
        exponent(request.currency)
    except MoneyError as e:
        raise TaxInputError(str(e)) from e
    if not request.lines:
        raise TaxInputError("no line items to tax")
    seen: set[str] = set()
    for line in request.lines:
        if line.id in seen:
            raise TaxInputError(f"duplicate line id {line.id!r}")
        seen.add(line.id)
        if line.quantity <= 0:
            raise TaxInputError(
                f"line {line.id} ({line.sku}): quantity must be positive, got {line.quantity}"
            )
        if line.unit_amount < 0:
            raise TaxInputError(f"line {line.id} ({line.sku}): negative unit amount")
        if not 0 <= line.discount <= line.quantity * line.unit_amount:
            raise TaxInputError(f"line {line.id} ({line.sku}): discount out of range")
    if request.shipping_amount < 0:
        raise TaxInputError("negative shipping amount")
    a = request.to_address
    try:
        return normalize_address(a.line1, a.city, a.state, a.postal_code, a.country)
    except AddressError as e:
        raise TaxInputError(str(e)) from e
