"""The TaxCalculator contract against the built-in rate table (adapters/tax/rates.json)."""

from __future__ import annotations

import pytest

from adapters.tax.port import SOURCE_RATE_TABLE, TaxCalculator
from adapters.tax.rate_table import RateTableCalculator
from tests.unit.tax.tax_contract import TaxCalculatorContract


class TestRateTableContract(TaxCalculatorContract):
    source = SOURCE_RATE_TABLE

    @pytest.fixture
    def calculator(self) -> TaxCalculator:
        return RateTableCalculator()
