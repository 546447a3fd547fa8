"""The one contract every TaxCalculator must meet. Subclass it and provide `calculator` and
`source`; the same scenarios run against the rate table and against TaxJar (via its peer).

Amounts are what any correct calculator must return for these well-known jurisdictions.
"""

from __future__ import annotations

import pytest

from adapters.tax.port import (
    TaxAddress,
    TaxCalculator,
    TaxError,
    TaxInputError,
    TaxLine,
    TaxQuote,
    TaxRequest,
)

LA = TaxAddress("200 N Spring St", "Los Angeles", "CA", "90012", "US")
SACRAMENTO = TaxAddress("1315 10th St", "Sacramento", "CA", "95814", "US")
NYC = TaxAddress("20 W 34th St", "New York", "NY", "10001", "US")
AUSTIN = TaxAddress("1100 Congress Ave", "Austin", "TX", "78701", "US")
PORTLAND = TaxAddress("1221 SW 4th Ave", "Portland", "OR", "97204", "US")
BERLIN = TaxAddress("Platz der Republik 1", "Berlin", "", "11011", "DE")
PARIS = TaxAddress("55 Rue du Faubourg Saint-Honoré", "Paris", "", "75008", "FR")
LONDON = TaxAddress("10 Downing St", "London", "", "sw1a2aa", "GB")
AMSTERDAM = TaxAddress("Dam 1", "Amsterdam", "", "1012JS", "NL")


def order(
    to: TaxAddress, *lines: tuple[int, int], currency: str = "USD", shipping: int = 0
) -> TaxRequest:
    return TaxRequest(
        currency=currency,
        lines=tuple(
            TaxLine(id=str(i), sku=f"SKU-{i}", quantity=q, unit_amount=a)
            for i, (q, a) in enumerate(lines, start=1)
        ),
        to_address=to,
        shipping_amount=shipping,
    )


class TaxCalculatorContract:
    source: str  # what this implementation records as the quote's source

    @pytest.fixture
    def calculator(self) -> TaxCalculator:
        raise NotImplementedError

    def quote(self, calculator: TaxCalculator, request: TaxRequest) -> TaxQuote:
        result = calculator.calculate(request)
        assert result.source == self.source
        assert result.currency == request.currency
        assert isinstance(result.amount, int)
        return result

    # --- amounts ---------------------------------------------------------------------------

    def test_postal_prefix_rate_beats_state_rate(self, calculator: TaxCalculator) -> None:
        assert self.quote(calculator, order(LA, (2, 5000))).amount == 950  # 9.5% of 100.00

    def test_state_rate_where_no_prefix_matches(self, calculator: TaxCalculator) -> None:
        assert self.quote(calculator, order(SACRAMENTO, (2, 5000))).amount == 725

    @pytest.mark.parametrize(
        ("to", "currency", "expected"),
        [
            (BERLIN, "EUR", 1900),
            (PARIS, "EUR", 2000),
            (LONDON, "GBP", 2000),
            (AMSTERDAM, "EUR", 2100),
        ],
    )
    def test_standard_vat(
        self, calculator: TaxCalculator, to: TaxAddress, currency: str, expected: int
    ) -> None:
        assert self.quote(calculator, order(to, (1, 10000), currency=currency)).amount == expected

    def test_sums_lines_and_quantities(self, calculator: TaxCalculator) -> None:
        # (3 * 19.99 + 5.00) * 8.25% = 5.360025 -> 536
        assert self.quote(calculator, order(AUSTIN, (3, 1999), (1, 500))).amount == 536

    def test_rounds_half_up_at_the_currency_exponent(self, calculator: TaxCalculator) -> None:
        # 2.00 * 7.25% = 0.145 -> 0.15 (banker's rounding or float math would give 0.14)
        assert self.quote(calculator, order(SACRAMENTO, (1, 200))).amount == 15

    @pytest.mark.parametrize(("unit_amount", "expected"), [(2175, 435), (575, 115), (2005, 401)])
    def test_amounts_exact_to_the_cent(
        self, calculator: TaxCalculator, unit_amount: int, expected: int
    ) -> None:
        # 20% VAT: 4.35, 1.15 and 4.01 are not exact binary floats (4.35 * 100 = 434.99999...)
        result = self.quote(calculator, order(PARIS, (1, unit_amount), currency="EUR"))
        assert result.amount == expected

    def test_fractional_rate(self, calculator: TaxCalculator) -> None:
        # 8.875% of 40.00 = 3.55
        assert self.quote(calculator, order(NYC, (1, 4000))).amount == 355

    def test_shipping_taxed_only_where_freight_is_taxable(self, calculator: TaxCalculator) -> None:
        without = self.quote(calculator, order(NYC, (1, 10000))).amount
        with_shipping = self.quote(calculator, order(NYC, (1, 10000), shipping=1000)).amount
        assert (without, with_shipping) == (888, 976)  # 8.875 + 0.8875 = 9.7625 -> 9.76
        ca = self.quote(calculator, order(SACRAMENTO, (1, 10000), shipping=1000)).amount
        assert ca == 725

    def test_zero_rate_state_is_a_real_zero(self, calculator: TaxCalculator) -> None:
        result = self.quote(calculator, order(PORTLAND, (1, 10000)))
        assert result.amount == 0

    def test_breakdown_names_every_line(self, calculator: TaxCalculator) -> None:
        result = self.quote(calculator, order(AUSTIN, (3, 1999), (1, 500)))
        by_line = {b.line_id: b for b in result.breakdown}
        assert {"1", "2"} <= set(by_line)
        assert by_line["1"].taxable_amount == 5997
        assert by_line["2"].taxable_amount == 500

    def test_address_spelling_does_not_change_the_result(self, calculator: TaxCalculator) -> None:
        messy = TaxAddress(" 200 n spring st ", "LOS ANGELES", "ca", " 90012 ", "us")
        assert self.quote(calculator, order(messy, (2, 5000))).amount == 950

    # --- bad input: permanent, with a reason -----------------------------------------------

    @pytest.mark.parametrize("country", ["ZZ", "JP", "USA", ""])
    def test_unsupported_country_is_permanent(
        self, calculator: TaxCalculator, country: str
    ) -> None:
        to = TaxAddress("1 Main St", "Somewhere", "", "12345", country)
        with pytest.raises(TaxInputError) as err:
            calculator.calculate(order(to, (1, 1000)))
        assert err.value.retryable is False
        assert "country" in err.value.reason

    @pytest.mark.parametrize(
        ("country", "postal"),
        [
            ("US", "ABCDE"),
            ("US", "9001"),
            ("US", "900123"),
            ("DE", "123"),
            ("NL", "12AB"),
            ("GB", "12345"),
            ("US", ""),
        ],
    )
    def test_malformed_postal_code_is_permanent(
        self, calculator: TaxCalculator, country: str, postal: str
    ) -> None:
        state = "CA" if country == "US" else ""
        to = TaxAddress("1 Main St", "Somewhere", state, postal, country)
        with pytest.raises(TaxInputError) as err:
            calculator.calculate(order(to, (1, 1000), currency="EUR"))
        assert err.value.retryable is False
        assert "postal code" in err.value.reason

    def test_unknown_us_state_is_permanent(self, calculator: TaxCalculator) -> None:
        to = TaxAddress("1 Main St", "Nowhere", "XX", "90012", "US")
        with pytest.raises(TaxInputError):
            calculator.calculate(order(to, (1, 1000)))

    @pytest.mark.parametrize("lines", [(), ((0, 1000),), ((-1, 1000),), ((1, -5),)])
    def test_bad_lines_are_permanent(
        self, calculator: TaxCalculator, lines: tuple[tuple[int, int], ...]
    ) -> None:
        with pytest.raises(TaxInputError):
            calculator.calculate(order(LA, *lines))

    def test_bad_currency_is_permanent(self, calculator: TaxCalculator) -> None:
        with pytest.raises(TaxError) as err:
            calculator.calculate(order(LA, (1, 1000), currency="usd"))
        assert err.value.retryable is False
