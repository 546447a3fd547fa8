from __future__ import annotations

import pytest

from adapters.tax.address import AddressError, normalize_address, normalize_postal_code


@pytest.mark.parametrize(
    ("country", "raw", "canonical"),
    [
        ("US", " 90012 ", "90012"),
        ("US", "90012-1234", "90012-1234"),
        ("GB", "sw1a2aa", "SW1A 2AA"),
        ("GB", "SW1A  2AA", "SW1A 2AA"),
        ("NL", "1012js", "1012 JS"),
        ("CA", "k1a0b1", "K1A 0B1"),
        ("DE", "10115", "10115"),
        ("JP", "100-0001", "100-0001"),
    ],
)
def test_postal_codes_are_canonicalised(country: str, raw: str, canonical: str) -> None:
    assert normalize_postal_code(country, raw) == canonical


@pytest.mark.parametrize(
    ("country", "raw"),
    [
        ("US", "9001"),
        ("US", "ABCDE"),
        ("DE", "1011"),
        ("NL", "AB1234"),
        ("GB", "123"),
        ("FR", "7500A"),
        ("JP", "!!"),
        ("US", "   "),
    ],
)
def test_malformed_postal_codes_name_the_problem(country: str, raw: str) -> None:
    with pytest.raises(AddressError, match="postal code"):
        normalize_postal_code(country, raw)


def test_equal_addresses_normalise_equal() -> None:
    a = normalize_address("200 N Spring St", "Los Angeles", "CA", "90012", "US")
    b = normalize_address("  200 n  SPRING st ", "LOS ANGELES", " ca", "90012 ", "us")
    assert a == b


@pytest.mark.parametrize(("state", "country"), [("California", "US"), ("", "US")])
def test_us_needs_a_state_code(state: str, country: str) -> None:
    with pytest.raises(AddressError, match="state"):
        normalize_address("1 Main", "X", state, "90012", country)
