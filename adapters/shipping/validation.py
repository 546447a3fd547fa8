"""Checks every shipping provider and `quote_best` run first: bad input fails fast, the same way."""

from __future__ import annotations

from adapters.money import MoneyError, exponent
from adapters.shipping.port import ShippingInputError, ShippingRequest
from adapters.tax.address import AddressError, NormalizedAddress, normalize_address


def validate_request(request: ShippingRequest) -> NormalizedAddress:
    try:
        exponent(request.currency)
    except MoneyError as e:
        raise ShippingInputError(str(e)) from e
    if not request.items:
        raise ShippingInputError("no items to ship")
    for item in request.items:
        if item.quantity <= 0:
            raise ShippingInputError(f"{item.sku}: quantity must be positive, got {item.quantity}")
        if item.weight_grams < 0 or item.unit_amount < 0:
            raise ShippingInputError(f"{item.sku}: negative weight or amount")
    a = request.to_address
    try:
        return normalize_address(a.line1, a.city, a.state, a.postal_code, a.country)
    except AddressError as e:
        raise ShippingInputError(str(e)) from e
