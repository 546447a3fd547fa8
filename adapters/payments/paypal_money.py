"""PayPal amounts are decimal strings in the currency's major unit ("10.99"); ours are integer
minor units. Conversion is integer arithmetic only, both ways, never through a float."""

from __future__ import annotations

# Currencies PayPal accepts without decimals: JPY has none; PayPal rejects decimals for HUF and
# TWD although ISO-4217 gives them two.
ZERO_DECIMAL = frozenset({"JPY", "HUF", "TWD"})


def _exponent(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL else 2


def to_paypal(amount: int, currency: str) -> dict[str, str]:
    """Our minor units -> PayPal's `{"currency_code", "value"}`."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    exp = _exponent(currency)
    value = str(amount) if exp == 0 else f"{amount // 10**exp}.{amount % 10**exp:0{exp}d}"
    return {"currency_code": currency.upper(), "value": value}


def from_paypal(money: object) -> tuple[int, str]:
    """PayPal's money object -> (minor units, lower-case currency). Refuses more decimals than
    the currency has: rounding someone's money is never our call."""
    if not isinstance(money, dict):
        raise ValueError("not a PayPal money object")
    currency = str(money.get("currency_code") or "")
    value = str(money.get("value") or "")
    if len(currency) != 3 or not value:
        raise ValueError("money object without currency_code or value")
    exp = _exponent(currency)
    whole, _, fraction = value.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > exp:
        raise ValueError(f"amount {value!r} is not a valid {currency.upper()} value")
    return int(whole) * 10**exp + int(fraction.ljust(exp, "0") or 0), currency.lower()
