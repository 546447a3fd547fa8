from __future__ import annotations

import pytest

from adapters.shipping.port import ShippingProvider
from adapters.shipping.rate_table_carrier import RateTableCarrier
from tests.unit.shipping.shipping_contract import ShippingProviderContract


class TestRateTableCarrierContract(ShippingProviderContract):
    @pytest.fixture
    def provider(self) -> ShippingProvider:
        return RateTableCarrier()
