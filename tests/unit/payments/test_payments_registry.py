"""Provider registry: routing by currency/country, fallback on an open breaker, secrets hidden."""

from __future__ import annotations

import logging
import pickle
import uuid

import pybreaker
import pytest

from adapters.payments.fake import FakeGateway
from adapters.payments.registry import (
    ANY_TENANT,
    NoProvider,
    ProviderAccount,
    ProviderRegistry,
    ProviderRouter,
    RoutingRule,
    Secret,
)
from adapters.payments.service import PaymentService
from events.messages import (
    AuthorizePayment,
    CapturePayment,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
)

SECRET = "rzp_secret_" + uuid.uuid4().hex  # unique: any leak is found by substring


def account(key: str, kind: str = "stripe", tenant: str = "shop-1") -> ProviderAccount:
    return ProviderAccount(
        key, tenant, kind, "rzp_key_id" if kind == "razorpay" else "", Secret(SECRET)
    )


def always(_: str) -> bool:
    return True


ROUTER = ProviderRouter(
    [
        RoutingRule("shop-in", "razorpay", currencies=frozenset({"INR"}), fallbacks=("stripe",)),
        RoutingRule("shop-1", "stripe-eu", countries=frozenset({"DE", "FR"})),
        RoutingRule(ANY_TENANT, "razorpay", currencies=frozenset({"INR"})),
    ]
)


@pytest.mark.parametrize(
    ("tenant", "currency", "country", "expected"),
    [
        ("shop-in", "INR", "IN", "razorpay"),  # tenant rule by currency
        ("shop-in", "inr", "IN", "razorpay"),  # Stripe's lower-case currency matches too
        ("shop-1", "EUR", "DE", "stripe-eu"),  # by country
        ("shop-1", "EUR", "US", "stripe"),  # no rule: what the storefront asked for
        ("shop-2", "INR", "IN", "razorpay"),  # a rule for every tenant
    ],
)
def test_routing_by_tenant_currency_and_country(
    tenant: str, currency: str, country: str, expected: str
) -> None:
    got = ROUTER.route(
        tenant_id=tenant, currency=currency, country=country, requested="stripe", available=always
    )
    assert got == expected


def test_fallback_while_the_primary_is_down_and_primary_when_all_are_down() -> None:
    def down(*names: str) -> object:
        return lambda key: key not in names

    route = {"tenant_id": "shop-in", "currency": "INR", "country": "IN", "requested": "x"}
    assert ROUTER.route(**route, available=down("razorpay")) == "stripe"  # type: ignore[arg-type]
    assert ROUTER.route(**route, available=down("razorpay", "stripe")) == "razorpay"  # type: ignore[arg-type]


def test_rule_must_name_registered_providers() -> None:
    registry = ProviderRegistry(lambda a: FakeGateway(a.key))
    registry.register(account("stripe"))
    with pytest.raises(NoProvider):
        registry.add_rule(RoutingRule(ANY_TENANT, "stripe", fallbacks=("paypal",)))


def authorize(cid: str, currency: str = "INR", provider: str = "stripe") -> AuthorizePayment:
    return AuthorizePayment(
        cid, 1, f"{cid}:authorize_payment:1", provider, "pm_card_visa", "c", 50000, currency
    )


def test_service_falls_back_when_the_primary_breaker_is_open_and_captures_where_it_authorized() -> (
    None
):
    registry = ProviderRegistry(lambda a: FakeGateway(a.key))
    registry.register(account("razorpay", "razorpay"))
    registry.register(account("stripe"))
    registry.add_rule(
        RoutingRule(ANY_TENANT, "razorpay", frozenset({"INR"}), fallbacks=("stripe",))
    )
    service = PaymentService(registry.gateways, router=registry.router, breaker_fail_max=1)
    try:
        first = service.handle(authorize(f"co_{uuid.uuid4().hex[:8]}"))
        assert isinstance(first, PaymentAuthorized) and first.provider == "razorpay"
        service.breaker("razorpay").open()
        assert service.breaker("razorpay").current_state == pybreaker.STATE_OPEN
        cid = f"co_{uuid.uuid4().hex[:8]}"
        reply = service.handle(authorize(cid))
        assert isinstance(reply, PaymentAuthorized)
        assert reply.provider == "stripe"  # the saga keeps it and captures there
        captured = service.handle(
            CapturePayment(
                cid, 1, f"{cid}:capture_payment:1", reply.provider, reply.payment_id, 50000, "INR"
            )
        )
        assert isinstance(captured, PaymentCaptured)
        # Other currencies are not routed: the storefront's choice stands.
        eur = service.handle(authorize(f"co_{uuid.uuid4().hex[:8]}", currency="EUR"))
        assert isinstance(eur, PaymentAuthorized) and eur.provider == "stripe"
    finally:
        service.close()


def test_a_retry_fails_over_never_only_a_first_attempt_does() -> None:
    """Attempt 1 meets the primary's open breaker: it never reached the primary, so the fallback
    may take it. Attempt 2 follows an attempt that may have authorized at the primary (its
    outcome unknown): it stays there and is retryable while the primary is down."""
    registry = ProviderRegistry(lambda a: FakeGateway(a.key))
    registry.register(account("razorpay", "razorpay"))
    registry.register(account("stripe"))
    registry.add_rule(
        RoutingRule(ANY_TENANT, "razorpay", frozenset({"INR"}), fallbacks=("stripe",))
    )
    service = PaymentService(registry.gateways, router=registry.router)
    try:
        service.breaker("razorpay").open()
        cid = f"co_{uuid.uuid4().hex[:8]}"
        first = service.handle(authorize(cid))
        assert isinstance(first, PaymentAuthorized) and first.provider == "stripe"
        other = f"co_{uuid.uuid4().hex[:8]}"
        retry = AuthorizePayment(
            other, 2, f"{other}:authorize_payment:2", "razorpay", "pm_card_visa", "c", 50000, "INR"
        )
        assert service.route(retry) == "razorpay"
        reply = service.handle(retry)
        assert isinstance(reply, PaymentDeclined) and reply.retryable
        assert reply.provider == "razorpay" and "circuit breaker open" in reply.reason
        assert registry.gateways["stripe"].find_by_checkout(other) == []  # nothing charged there
    finally:
        service.close()


def test_secrets_never_in_repr_str_logs_or_pickles(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = Secret(SECRET)
    acct = account("razorpay", "razorpay")
    registry = ProviderRegistry(lambda a: FakeGateway(a.key))
    registry.register(acct)
    registry.register(account("stripe"))
    registry.add_rule(RoutingRule(ANY_TENANT, "razorpay", fallbacks=("stripe",)))
    registry.router.route(
        tenant_id="t",
        currency="INR",
        country="IN",
        requested="x",
        available=lambda k: k == "stripe",
    )
    logging.getLogger("test").info("account %s %r", acct, secret)
    shown = [repr(secret), str(secret), repr(acct), str(acct), repr(registry), f"{acct}"]
    shown += [r.getMessage() + str(r.__dict__) for r in caplog.records]
    assert all(SECRET not in text for text in shown)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert secret.reveal() == SECRET and secret == Secret(SECRET)


def test_stripe_accounts_build_a_named_gateway_and_unknown_kinds_are_refused() -> None:
    from adapters.payments.registry import build_gateway

    gateway = build_gateway(
        ProviderAccount("shop-1/stripe", "shop-1", "stripe", "", Secret(SECRET), {})
    )
    assert gateway.provider == "shop-1/stripe" and SECRET not in repr(gateway)
    with pytest.raises(NoProvider):
        build_gateway(account("x", "paypal"))


def test_service_routes_by_the_commands_tenant_and_country() -> None:
    registry = ProviderRegistry(lambda a: FakeGateway(a.key))
    for key in ("stripe", "stripe-eu", "shop-in/razorpay"):
        registry.register(account(key))
    registry.add_rule(RoutingRule("shop-in", "shop-in/razorpay"))  # the tenant's own account
    registry.add_rule(RoutingRule(ANY_TENANT, "stripe-eu", countries=frozenset({"DE", "FR"})))
    service = PaymentService(registry.gateways, router=registry.router)

    def routed(tenant_id: str, country: str) -> str:
        cid = f"co_{uuid.uuid4().hex[:8]}"
        command = AuthorizePayment(
            cid,
            1,
            f"{cid}:authorize_payment:1",
            "stripe",
            "pm_card_visa",
            "c",
            50000,
            "EUR",
            tenant_id=tenant_id,
            country=country,
        )
        assert service.route(command) == service.handle(command).provider  # type: ignore[union-attr]
        return service.route(command)

    try:
        assert routed("shop-in", "IN") == "shop-in/razorpay"
        assert routed("shop-in", "DE") == "shop-in/razorpay"  # the tenant's rule comes first
        assert routed("shop-1", "DE") == "stripe-eu"
        assert routed("shop-1", "US") == "stripe"  # no rule: the storefront's choice
        # A command written before the routing fields decodes with "": only "*" rules without
        # countries can match it, so it keeps the storefront's choice here.
        assert routed("", "") == "stripe"
    finally:
        service.close()


def test_razorpay_accounts_build_a_named_gateway_and_need_a_key_id() -> None:
    from adapters.payments.registry import build_gateway

    gateway = build_gateway(account("shop-in/razorpay", "razorpay"))
    assert gateway.provider == "shop-in/razorpay" and SECRET not in repr(gateway)
    no_key_id = ProviderAccount("r", "shop-in", "razorpay", "", Secret(SECRET))
    with pytest.raises(NoProvider, match="key_id"):
        build_gateway(no_key_id)


def test_paypal_accounts_build_a_named_gateway_and_need_a_client_id() -> None:
    from adapters.payments.paypal_gateway import PayPalGateway
    from adapters.payments.registry import build_gateway

    paypal = ProviderAccount("shop-eu/paypal", "shop-eu", "paypal", "AeB-client", Secret(SECRET))
    gateway = build_gateway(paypal)
    assert isinstance(gateway, PayPalGateway)
    assert gateway.provider == "shop-eu/paypal" and SECRET not in repr(gateway)
    no_client_id = ProviderAccount("p", "shop-eu", "paypal", "", Secret(SECRET))
    with pytest.raises(NoProvider, match="client id"):
        build_gateway(no_client_id)
