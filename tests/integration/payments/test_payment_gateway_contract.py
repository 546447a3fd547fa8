"""The payment contract against the fake, localstripe (real SDK, real HTTP), and Razorpay and
PayPal on their local contract peers (real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import stripe

from adapters.payments.fake import FakeGateway, Fault, Op
from adapters.payments.paypal_gateway import PayPalGateway
from adapters.payments.port import PaymentGateway
from adapters.payments.razorpay_gateway import RazorpayGateway
from adapters.payments.stripe_gateway import StripeGateway
from infra.settings import Settings
from tests.integration.payments.payment_contract import PaymentGatewayContract
from tests.integration.payments.paypal_peer import PayPalPeer, vault_for
from tests.integration.payments.razorpay_peer import RazorpayPeer, token_for

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
        *args: Any,
        **kwargs: Any,
    ) -> requests.Response:
        verb = method.decode() if isinstance(method, bytes) else method
        response = super().request(verb, url, *args, **kwargs)
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


# --- Razorpay on the local contract peer -----------------------------------------------------


class LoseHttpxResponses(httpx.BaseTransport):
    """Sends each request for real, then drops the answer of the first `count` matching ones:
    a read timeout after Razorpay acted, as httpx reports it."""

    def __init__(self, method: str, path: str, count: int = 1) -> None:
        self._inner = httpx.HTTPTransport()
        self.match = (method.upper(), path)
        self.remaining = count

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if (request.method, request.url.path) == self.match and self.remaining > 0:
            self.remaining -= 1
            response.read()
            response.close()
            raise httpx.ReadTimeout("injected: response lost after the request", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


class RazorpayHarness:
    def __init__(self, peer: RazorpayPeer) -> None:
        self.peer = peer
        self.lossy: LoseHttpxResponses | None = None

    def gateway(self, transport: httpx.BaseTransport | None = None) -> RazorpayGateway:
        return RazorpayGateway(
            self.peer.key_id,
            self.peer.key_secret,
            api_base=self.peer.base_url,
            timeout_s=5,
            transport=transport,
        )

    def card(self, number: str) -> str:
        return token_for(number)

    def complete_3ds(self, payment_id: str, *, success: bool) -> None:
        response = httpx.post(
            f"{self.peer.base_url}/_test/payments/{payment_id}/authenticate",
            params={"success": "true" if success else "false"},
            timeout=5,
        )
        response.raise_for_status()

    def payments_for(self, checkout_id: str) -> list[str]:
        return self.peer.payments_of_checkout(checkout_id)

    def gateway_losing_first_authorize_response(self) -> PaymentGateway:
        self.lossy = LoseHttpxResponses("POST", "/v1/payments/create/json")
        return self.gateway(self.lossy)

    def responses_lost(self) -> int:
        return 1 - self.lossy.remaining if self.lossy else 0


@pytest.mark.integration
class TestRazorpayGatewayOnPeer(PaymentGatewayContract):
    partial_capture = False  # Razorpay: capture amount must equal the authorized amount

    @pytest.fixture
    def harness(self, razorpay_peer: RazorpayPeer) -> RazorpayHarness:
        return RazorpayHarness(razorpay_peer)

    @pytest.fixture
    def gateway(self, harness: RazorpayHarness) -> Iterator[RazorpayGateway]:
        gateway = harness.gateway()
        yield gateway
        gateway.close()


# --- PayPal on the local contract peer -------------------------------------------------------


class LoseOrderAuthorizeResponses(LoseHttpxResponses):
    """Drops the answer of the first `POST /v2/checkout/orders/{id}/authorize` after the peer
    acted: the call that holds the money (the order itself holds none)."""

    def __init__(self) -> None:
        super().__init__("POST", "")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        path = request.url.path
        authorize = path.startswith("/v2/checkout/orders/") and path.endswith("/authorize")
        if request.method == "POST" and authorize and self.remaining > 0:
            self.remaining -= 1
            response.read()
            response.close()
            raise httpx.ReadTimeout("injected: response lost after the request", request=request)
        return response


class PayPalHarness:
    def __init__(self, peer: PayPalPeer) -> None:
        self.peer = peer
        self.lossy: LoseOrderAuthorizeResponses | None = None

    def gateway(self, transport: httpx.BaseTransport | None = None) -> PayPalGateway:
        return PayPalGateway(
            self.peer.client_id,
            self.peer.client_secret,
            api_base=self.peer.base_url,
            timeout_s=5,
            transport=transport,
        )

    def card(self, number: str) -> str:
        return vault_for(number)

    def complete_3ds(self, payment_id: str, *, success: bool) -> None:
        response = httpx.post(
            f"{self.peer.base_url}/_test/orders/{payment_id}/payer-action",
            params={"success": "true" if success else "false"},
            timeout=5,
        )
        response.raise_for_status()

    def payments_for(self, checkout_id: str) -> list[str]:
        return self.peer.orders_of_checkout(checkout_id)

    def gateway_losing_first_authorize_response(self) -> PaymentGateway:
        self.lossy = LoseOrderAuthorizeResponses()
        return self.gateway(self.lossy)

    def responses_lost(self) -> int:
        return 1 - self.lossy.remaining if self.lossy else 0


@pytest.mark.integration
class TestPayPalGatewayOnPeer(PaymentGatewayContract):
    @pytest.fixture
    def harness(self, paypal_peer: PayPalPeer) -> PayPalHarness:
        return PayPalHarness(paypal_peer)

    @pytest.fixture
    def gateway(self, harness: PayPalHarness) -> Iterator[PayPalGateway]:
        gateway = harness.gateway()
        yield gateway
        gateway.close()
