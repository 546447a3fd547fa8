"""Exact money: ISO-4217 exponents, and conversion between our integer minor units and vendors'
decimal amounts. Shared by every adapter that formats or converts money.

TaxJar and EasyPost speak decimal major units ("7.58"). We parse their JSON numbers as
`Decimal` (never float) and round half-up at the currency's exponent.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO-4217 currencies whose minor unit is not 1/100. Everything else valid is 2.
_EXPONENT: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
_CODE = re.compile(r"^[A-Z]{3}$")


class MoneyError(ValueError):
    """A currency code or vendor amount we cannot convert exactly."""


def exponent(currency: str) -> int:
    if not _CODE.match(currency):
        raise MoneyError(f"currency {currency!r} is not an ISO-4217 code")
    return _EXPONENT.get(currency, 2)


def to_decimal(minor: int, currency: str) -> Decimal:
    """Minor units -> exact decimal major units (1999 USD -> Decimal('19.99'))."""
    return Decimal(minor).scaleb(-exponent(currency))


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """Decimal major units -> minor units, rounding half-up at the currency exponent.

    Floats are refused: by the time a float exists the exact value is already lost.
    """
    if isinstance(amount, float):
        raise MoneyError("refusing a float amount; parse vendor JSON with parse_float=Decimal")
    try:
        value = Decimal(amount)
    except (InvalidOperation, ValueError) as e:
        raise MoneyError(f"not a decimal amount: {amount!r}") from e
    if not value.is_finite():
        raise MoneyError(f"not a finite amount: {amount!r}")
    return int(value.scaleb(exponent(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def apply_rate_bp(amount: int, rate_bp: int) -> int:
    """`amount` * `rate_bp`/10000, half-up, in integers (amount and rate are non-negative)."""
    return (amount * rate_bp + 5_000) // 10_000
