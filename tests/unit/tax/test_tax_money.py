from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.money import MoneyError, apply_rate_bp, exponent, to_decimal, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("4.35", "USD", 435),
        ("1.15", "USD", 115),
        ("0.145", "USD", 15),
        ("0.144", "USD", 14),
        ("-0.145", "USD", -15),
        ("1234.5", "JPY", 1235),
        ("1.2345", "KWD", 1235),
        ("7", "EUR", 700),
        (Decimal("19.990"), "USD", 1999),
    ],
)
def test_to_minor_is_exact_and_half_up(amount: str | Decimal, currency: str, minor: int) -> None:
    assert to_minor(amount, currency) == minor


def test_floats_are_refused() -> None:
    with pytest.raises(MoneyError):
        to_minor(4.35, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", ""])
def test_non_amounts_are_refused(bad: str) -> None:
    with pytest.raises(MoneyError):
        to_minor(bad, "USD")


@pytest.mark.parametrize("code", ["usd", "US", "EURO", ""])
def test_currency_codes_are_checked(code: str) -> None:
    with pytest.raises(MoneyError):
        exponent(code)


def test_to_decimal() -> None:
    assert to_decimal(1999, "USD") == Decimal("19.99")
    assert str(to_decimal(1999, "USD")) == "19.99"
    assert to_decimal(1999, "JPY") == Decimal(1999)
    assert str(to_decimal(1999, "BHD")) == "1.999"


@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLF"]),
)
def test_round_trip(minor: int, currency: str) -> None:
    assert to_minor(to_decimal(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("amount", "bp", "tax"),
    [(200, 725, 15), (10000, 950, 950), (1, 4999, 0), (1, 5000, 1), (0, 2000, 0)],
)
def test_apply_rate_bp(amount: int, bp: int, tax: int) -> None:
    assert apply_rate_bp(amount, bp) == tax
