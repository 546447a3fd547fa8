"""PayPal's decimal strings <-> integer minor units, exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.payments.paypal_money import from_paypal, to_paypal


def test_two_and_zero_decimal_currencies() -> None:
    assert to_paypal(1999, "eur") == {"currency_code": "EUR", "value": "19.99"}
    assert to_paypal(5, "usd") == {"currency_code": "USD", "value": "0.05"}
    assert to_paypal(1500, "JPY") == {"currency_code": "JPY", "value": "1500"}
    assert from_paypal({"currency_code": "USD", "value": "10"}) == (1000, "usd")
    assert from_paypal({"currency_code": "USD", "value": "10.5"}) == (1050, "usd")


@pytest.mark.parametrize(
    "money",
    [
        {"currency_code": "USD", "value": "10.001"},  # more decimals than the currency has
        {"currency_code": "JPY", "value": "10.5"},
        {"currency_code": "USD", "value": "-1.00"},
        {"currency_code": "USD", "value": "1e3"},
        {"currency_code": "USD"},
        "10.00",
    ],
)
def test_malformed_amounts_are_refused(money: object) -> None:
    with pytest.raises(ValueError):
        from_paypal(money)


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["EUR", "USD", "JPY", "HUF"]))
def test_round_trip(amount: int, currency: str) -> None:
    assert from_paypal(to_paypal(amount, currency)) == (amount, currency.lower())
