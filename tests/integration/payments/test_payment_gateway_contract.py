"""The payment contract against the fake and against localstripe (real SDK, real HTTP)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import stripe

from adapters.payments.fake import FakeGateway, Fault, Op
from adapters.payments.port import PaymentGateway
from adapters.payments.stripe_gateway import StripeGateway
from infra.settings import Settings
from tests.integration.payments.payment_contract import PaymentGatewayContract

# --- fake ------------------------------------------------------------------------------------


class FakeHarness:
    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway

    def card(self, number: str) -> str:
        return number

    def complete_3ds(self, payment_id: str, *, success: bool) -> None:
        self.gateway.authenticate(payment_id, success=success)

    def payments_for(self, checkout_id: str) -> list[str]:
        return [p.payment_id for p in self.gateway.find_by_checkout(checkout_id)]

    def gateway_losing_first_authorize_response(self) -> PaymentGateway:
        self.gateway.inject(Op.AUTHORIZE, 1, Fault.UNKNOWN_AFTER)
        self._calls_before = self.gateway.calls(Op.AUTHORIZE)
        return self.gateway

    def responses_lost(self) -> int:
        # The fault fires on the first call after injection; count it once it has been made.
        return 1 if self.gateway.calls(Op.AUTHORIZE) > self._calls_before else 0


class TestFakeGateway(PaymentGatewayContract):
    @pytest.fixture
    def gateway(self) -> FakeGateway:
        return FakeGateway()

    @pytest.fixture
    def harness(self, gateway: FakeGateway) -> FakeHarness:
        return FakeHarness(gateway)


# --- localstripe -----------------------------------------------------------------------------


class LoseResponses(requests.Session):
    """Sends each request for real, then drops the response of the first `count` requests that
    match: exactly what a read timeout after the provider acted looks like to the SDK."""

    def __init__(self, method: str, path: str, count: int = 1) -> None:
        super().__init__()
        self.match = (method, path)
        self.remaining = count

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,  # type: ignore[override]
        **kwargs: Any,
    ) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        path = urlsplit(str(url)).path
        if (str(method), path) == self.match and self.remaining > 0:
            self.remaining -= 1
            raise requests.exceptions.ReadTimeout("injected: response lost after the request")
        return response


class LocalStripeHarness:
    def __init__(self, settings: Settings) -> None:
        assert settings.stripe_api_base
        self.settings = settings
        self.raw = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            max_network_retries=0,
        )

    def card(self, number: str) -> str:
        if number.startswith("pm_"):
            return number
        pm = self.raw.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        return pm.id

    def complete_3ds(self, payment_id: str, *, success: bool) -> None:
        secret = self.raw.v1.payment_intents.retrieve(payment_id).client_secret
        response = httpx.post(
            f"{self.settings.stripe_api_base}/v1/payment_intents/{payment_id}/_authenticate",
            params={"client_secret": secret, "success": "true" if success else "false"},
            headers={"Authorization": f"Bearer {self.settings.stripe_api_key}"},
            timeout=5,
        )
        response.raise_for_status()

    def responses_lost(self) -> int:
        return 1 - self.lossy.remaining

    def payments_for(self, checkout_id: str) -> list[str]:
        listing = self.raw.v1.payment_intents.list(params={"limit": 100})
        return [
            pi.id
            for pi in listing.auto_paging_iter()
            if pi.to_dict()["metadata"].get("checkout_id") == checkout_id
        ]

    def gateway_losing_first_authorize_response(self) -> PaymentGateway:
        session = LoseResponses("post", "/v1/payment_intents")
        self.lossy = session
        return StripeGateway(
            self.settings.stripe_api_key,
            api_base=self.settings.stripe_api_base,
            http_client=stripe.RequestsClient(timeout=5, session=session),
        )


@pytest.mark.integration
class TestStripeGatewayOnLocalstripe(PaymentGatewayContract):
    @pytest.fixture
    def gateway(self, settings: Settings) -> StripeGateway:
        return StripeGateway(
            settings.stripe_api_key, api_base=settings.stripe_api_base, timeout_s=5
        )

    @pytest.fixture
    def harness(self, settings: Settings) -> LocalStripeHarness:
        return LocalStripeHarness(settings)
