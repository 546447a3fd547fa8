"""The ShippingProvider contract against EasyPost, over HTTP to a local peer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.shipping.easypost_client import EasyPostClient
from adapters.shipping.port import ShippingAddress, ShippingProvider
from tests.integration.shipping.easypost_peer import EasyPostPeer
from tests.unit.shipping.shipping_contract import ShippingProviderContract

pytestmark = pytest.mark.integration

WAREHOUSE = ShippingAddress("9500 Gilman Dr", "La Jolla", "CA", "92093", "US")


class TestEasyPostContract(ShippingProviderContract):
    @pytest.fixture
    def provider(self, easypost_peer: EasyPostPeer) -> Iterator[ShippingProvider]:
        client = EasyPostClient(
            easypost_peer.api_key, from_address=WAREHOUSE, base_url=easypost_peer.url, timeout_s=2.0
        )
        yield client
        client.close()
