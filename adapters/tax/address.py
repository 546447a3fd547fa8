"""Address normalisation shared by tax and shipping (also used to build cache keys).

Raises `AddressError` (a ValueError) with a customer-readable reason; each port wraps it in its
own permanent error type. Postal-code formats are checked for the countries we sell to most; for
other countries only a loose shape check applies (the provider decides).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Canonical form after upper-casing and collapsing spaces.
_POSTAL: dict[str, tuple[re.Pattern[str], str]] = {
    "US": (re.compile(r"^\d{5}(-\d{4})?$"), "5 digits or ZIP+4 (12345 or 12345-6789)"),
    "DE": (re.compile(r"^\d{5}$"), "5 digits"),
    "FR": (re.compile(r"^\d{5}$"), "5 digits"),
    "NL": (re.compile(r"^\d{4} [A-Z]{2}$"), "4 digits and 2 letters (1234 AB)"),
    "GB": (re.compile(r"^[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}$"), "a UK postcode (SW1A 1AA)"),
    "CA": (re.compile(r"^[A-Z]\d[A-Z] \d[A-Z]\d$"), "A1A 1A1"),
    "AU": (re.compile(r"^\d{4}$"), "4 digits"),
}
_LOOSE = re.compile(r"^[A-Z0-9][A-Z0-9 -]{1,10}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# Countries whose postcode we re-space into the canonical "outward inward" form.
_SPACED_TAIL = {"NL": 2, "GB": 3, "CA": 3}


class AddressError(ValueError):
    """The address cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class NormalizedAddress:
    line1: str
    city: str
    state: str
    postal_code: str
    country: str


def normalize_country(country: str) -> str:
    code = country.strip().upper()
    if not _COUNTRY.match(code):
        raise AddressError(f"country {country!r} is not an ISO-3166 alpha-2 code")
    return code


def normalize_postal_code(country: str, postal_code: str) -> str:
    country = normalize_country(country)
    compact = re.sub(r"\s+", "", postal_code.strip().upper())
    if not compact:
        raise AddressError("postal code is empty")
    tail = _SPACED_TAIL.get(country)
    code = f"{compact[:-tail]} {compact[-tail:]}" if tail and len(compact) > tail else compact
    rule = _POSTAL.get(country)
    if rule is not None:
        pattern, expected = rule
        if not pattern.match(code):
            raise AddressError(
                f"postal code {postal_code!r} is malformed for {country}: expected {expected}"
            )
    elif not _LOOSE.match(code):
        raise AddressError(f"postal code {postal_code!r} is malformed")
    return code


def normalize_address(
    line1: str, city: str, state: str, postal_code: str, country: str
) -> NormalizedAddress:
    """Canonical spelling so equal addresses hash equal; validates country and postcode."""
    country_code = normalize_country(country)
    state_code = state.strip().upper()
    if country_code == "US" and not re.match(r"^[A-Z]{2}$", state_code):
        raise AddressError(f"US state {state!r} must be a 2-letter code")
    return NormalizedAddress(
        line1=" ".join(line1.split()).casefold(),
        city=" ".join(city.split()).casefold(),
        state=state_code,
        postal_code=normalize_postal_code(country_code, postal_code),
        country=country_code,
    )
