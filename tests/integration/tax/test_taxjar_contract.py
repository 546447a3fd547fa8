"""The TaxCalculator contract against TaxJar, over HTTP to a local peer speaking /v2/taxes."""

from __future__ import annotations

import pytest

from adapters.tax.port import SOURCE_TAXJAR, TaxCalculator
from adapters.tax.taxjar_calculator import TaxJarCalculator
from tests.integration.tax.taxjar_peer import TaxJarPeer
from tests.unit.tax.tax_contract import TaxCalculatorContract

pytestmark = pytest.mark.integration


class TestTaxJarContract(TaxCalculatorContract):
    source = SOURCE_TAXJAR

    @pytest.fixture
    def calculator(self, taxjar_peer: TaxJarPeer) -> TaxCalculator:
        return TaxJarCalculator(taxjar_peer.api_key, api_url=taxjar_peer.url, timeout_s=2.0)
