"""Rate-table specifics beyond the shared contract: lookup precedence, allocation, identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.tax.port import TaxAddress, TaxInputError, TaxLine, TaxRequest
from adapters.tax.rate_table import RateTableCalculator

TABLE = {
    "countries": {
        "US": {
            "requires_region": True,
            "regions": {
                "CA": {
                    "rate_bp": 700,
                    "postal_prefixes": {
                        "9": {"rate_bp": 800},
                        "900": {"rate_bp": 900},
                        "9001": {"rate_bp": "912.5"},
                    },
                },
            },
        },
        "DE": {"rate_bp": 1900, "shipping_taxable": True},
    }
}


@pytest.fixture
def table(tmp_path: Path) -> RateTableCalculator:
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(TABLE))
    return RateTableCalculator(path)


def request(
    postal: str, *amounts: int, country: str = "US", state: str = "CA", shipping: int = 0
) -> TaxRequest:
    return TaxRequest(
        "USD",
        tuple(TaxLine(str(i), f"S{i}", 1, a) for i, a in enumerate(amounts)),
        TaxAddress("1 Main", "X", state, postal, country),
        shipping,
    )


@pytest.mark.parametrize(
    ("postal", "tax"),
    [
        ("80000", 700),
        ("95000", 800),
        ("90099", 900),
        ("90012", 913),  # 912.5 bp of 100.00 -> 9.125
    ],
)
def test_longest_postal_prefix_wins(table: RateTableCalculator, postal: str, tax: int) -> None:
    assert table.calculate(request(postal, 10000)).amount == tax


def test_unknown_region_in_a_region_country_is_rejected(table: RateTableCalculator) -> None:
    with pytest.raises(TaxInputError, match="region 'NV'"):
        table.calculate(request("89101", 100, state="NV"))


def test_line_taxes_sum_to_the_rounded_total(table: RateTableCalculator) -> None:
    # three lines of 0.05 at 19%: 0.95 cent each, 2.85 in total -> 3, spread over the lines
    quote = table.calculate(request("10115", 5, 5, 5, country="DE", state=""))
    assert quote.amount == 3
    assert [b.tax_amount for b in quote.breakdown] == [1, 1, 1]
    quote = table.calculate(request("10115", 10, 3, 3, country="DE", state=""))
    assert quote.amount == 3  # 1.9 + 0.57 + 0.57 = 3.04
    assert sum(b.tax_amount for b in quote.breakdown) == 3


def test_taxable_shipping_is_its_own_breakdown_line(table: RateTableCalculator) -> None:
    quote = table.calculate(request("10115", 10000, country="DE", state="", shipping=500))
    assert quote.amount == 1995
    assert [(b.line_id, b.tax_amount) for b in quote.breakdown] == [("0", 1900), ("shipping", 95)]


def test_provider_id_changes_with_the_file(tmp_path: Path, table: RateTableCalculator) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"countries": {"DE": {"rate_bp": 700}}}))
    assert RateTableCalculator(other).provider_id != table.provider_id
    assert RateTableCalculator().provider_id.startswith("rate_table:")


def test_shipped_table_covers_every_us_state_and_the_vat_countries() -> None:
    table = RateTableCalculator()
    for country in ("US", "DE", "FR", "GB", "NL"):
        assert table.supports(country)
    data = json.loads((Path(__file__).parents[3] / "adapters/tax/rates.json").read_text())
    assert len(data["countries"]["US"]["regions"]) == 51  # 50 states + DC
