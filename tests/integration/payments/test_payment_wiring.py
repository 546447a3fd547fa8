"""infra.adapters_wiring.payment_service on embedded Postgres + localstripe + the Razorpay and
PayPal peers:
the default Stripe account for every tenant, and tenants' stored providers routed by their rules."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from adapters.payments.fake import FakeGateway
from adapters.payments.registry import (
    KEY_ENV,
    PostgresProviderStore,
    ProviderAccount,
    ProviderRegistry,
    ProviderRouter,
    RoutingRule,
    Secret,
    build_gateway,
    register_provider,
    stored_providers,
)
from adapters.payments.service import PaymentService
from events.messages import (
    AuthorizePayment,
    CapturePayment,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentRefunded,
    RefundPayment,
)
from infra.adapters_wiring import payment_service
from infra.providers_cli import main
from infra.settings import ConfigError, Settings
from tests.integration.payments.paypal_peer import PayPalPeer, vault_for
from tests.integration.payments.razorpay_peer import RazorpayPeer, token_for

pytestmark = pytest.mark.integration


def authorize(tenant_id: str, country: str, currency: str = "INR", **kw: Any) -> AuthorizePayment:
    cid = f"co_{uuid.uuid4().hex[:12]}"
    method = kw.get("payment_method", "pm_card_visa")
    return AuthorizePayment(
        cid, 1, f"{cid}:authorize_payment:1", "stripe", method, "cu-1", 50_000, currency,
        tenant_id=tenant_id, country=country,
    )  # fmt: skip


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, key)  # for the CLI, which reads it through Settings
    return key


@pytest.fixture
def db_settings(settings: Settings, database_url: str, provider_key: str) -> Settings:
    return dataclasses.replace(
        settings, database_url=database_url, payment_providers_key=provider_key
    )


@pytest.fixture
def store(migrated_database_url: str, provider_key: str) -> PostgresProviderStore:
    return PostgresProviderStore.from_key(
        lambda: psycopg.connect(migrated_database_url), provider_key
    )


def razorpay_account(peer: RazorpayPeer, tenant: str = "shop-in") -> ProviderAccount:
    return ProviderAccount(
        f"{tenant}/razorpay",
        tenant,
        "razorpay",
        peer.key_id,
        Secret(peer.key_secret),
        {"api_base": peer.base_url},
    )


def test_default_is_stripe_for_every_tenant(db_settings: Settings) -> None:
    handle = payment_service(db_settings)
    command = authorize("shop-in", "IN", currency="EUR")
    reply = handle(command)
    assert isinstance(reply, PaymentAuthorized) and reply.provider == "stripe"
    assert reply.payment_id.startswith("pi_")  # localstripe
    # The attempt is in our durable log, with the payment it made.
    assert db_settings.database_url
    with psycopg.connect(db_settings.database_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, payment_id, outcome FROM payment_attempts"
            " WHERE checkout_id = %s",
            (command.checkout_id,),
        ).fetchall()
    assert rows == [(command.idempotency_key, reply.payment_id, "authorized")]


def test_stored_tenant_provider_is_routed_end_to_end(
    db_settings: Settings, store: PostgresProviderStore, razorpay_peer: RazorpayPeer
) -> None:
    register_provider(
        store,
        razorpay_account(razorpay_peer),
        [RoutingRule("shop-in", "shop-in/razorpay", countries=frozenset({"IN"}))],
    )
    handle = payment_service(db_settings)

    command = authorize("shop-in", "IN", payment_method=token_for("4242424242424242"))
    reply = handle(command)
    assert isinstance(reply, PaymentAuthorized), reply
    assert reply.provider == "shop-in/razorpay"
    assert razorpay_peer.payments_of_checkout(command.checkout_id) == [reply.payment_id]
    # The saga sends capture and refund to the provider the reply named.
    cid = command.checkout_id
    captured = handle(
        CapturePayment(cid, 1, f"{cid}:capture_payment:1", reply.provider, reply.payment_id,
                       50_000, "INR")
    )  # fmt: skip
    assert isinstance(captured, PaymentCaptured)
    refunded = handle(
        RefundPayment(cid, 1, f"{cid}:refund_payment:1", reply.provider, reply.payment_id,
                      20_000, "INR")
    )  # fmt: skip
    assert isinstance(refunded, PaymentRefunded) and refunded.amount == 20_000

    # Same tenant elsewhere, and other tenants: the default Stripe account.
    for other in (authorize("shop-in", "US", "EUR"), authorize("shop-1", "IN", "EUR")):
        reply = handle(other)
        assert isinstance(reply, PaymentAuthorized) and reply.provider == "stripe"


def test_rows_without_the_key_refuse_to_start(
    db_settings: Settings,
    store: PostgresProviderStore,
    razorpay_peer: RazorpayPeer,
) -> None:
    register_provider(store, razorpay_account(razorpay_peer))
    with pytest.raises(RuntimeError, match=KEY_ENV):
        payment_service(dataclasses.replace(db_settings, payment_providers_key=None))


def test_register_without_routes_adds_a_catch_all_once(
    store: PostgresProviderStore, razorpay_peer: RazorpayPeer, database_url: str, provider_key: str
) -> None:
    account = razorpay_account(razorpay_peer)
    register_provider(store, account)
    register_provider(store, account)  # e.g. a rotated secret: routes unchanged
    accounts, rules = stored_providers(lambda: psycopg.connect(database_url), provider_key)
    assert [a.key for a in accounts] == ["shop-in/razorpay"]
    assert rules == [RoutingRule("shop-in", "shop-in/razorpay")]


def test_cli_registers_without_the_secret_on_the_command_line(
    store: PostgresProviderStore,
    razorpay_peer: RazorpayPeer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PAYMENT_PROVIDER_SECRET", razorpay_peer.key_secret)
    args = ["register", "--key", "shop-in/razorpay", "--tenant", "shop-in", "--kind", "razorpay",
            "--key-id", razorpay_peer.key_id, "--api-base", razorpay_peer.base_url,
            "--currency", "inr", "--fallback", "stripe-backup"]  # fmt: skip
    backup = ProviderAccount("stripe-backup", "shop-in", "stripe", "", Secret("sk_test_backup"))
    register_provider(store, backup, [])
    assert main(args) == 0
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert razorpay_peer.key_secret not in out and "shop-in/razorpay" in out
    (rule,) = store.load_routes()
    assert rule == RoutingRule(
        "shop-in", "shop-in/razorpay", frozenset({"INR"}), fallbacks=("stripe-backup",)
    )


def test_stored_paypal_account_is_a_tenants_primary_end_to_end(
    db_settings: Settings, store: PostgresProviderStore, paypal_peer: PayPalPeer
) -> None:
    tenant = f"shop-pp-{uuid.uuid4().hex[:6]}"
    key = f"{tenant}/paypal"
    account = ProviderAccount(
        key, tenant, "paypal", paypal_peer.client_id, Secret(paypal_peer.client_secret),
        {"api_base": paypal_peer.base_url},
    )  # fmt: skip
    register_provider(store, account, [RoutingRule(tenant, key, currencies=frozenset({"EUR"}))])
    handle = payment_service(db_settings)
    command = authorize(tenant, "DE", "EUR", payment_method=vault_for("4242424242424242"))
    reply = handle(command)
    assert isinstance(reply, PaymentAuthorized), reply
    assert reply.provider == key
    assert paypal_peer.orders_of_checkout(command.checkout_id) == [reply.payment_id]
    cid = command.checkout_id
    captured = handle(
        CapturePayment(cid, 1, f"{cid}:capture_payment:1", key, reply.payment_id, 50_000, "EUR")
    )
    assert isinstance(captured, PaymentCaptured) and captured.amount == 50_000
    refunded = handle(
        RefundPayment(cid, 1, f"{cid}:refund_payment:1", key, reply.payment_id, 20_000, "EUR")
    )
    assert isinstance(refunded, PaymentRefunded) and refunded.amount == 20_000
    (capture,) = [c for c in paypal_peer.captures.values() if c["custom_id"] == cid]
    assert capture["status"] == "PARTIALLY_REFUNDED"


def test_configured_paypal_is_asked_for_by_name_and_named_as_a_fallback(
    db_settings: Settings,
    store: PostgresProviderStore,
    razorpay_peer: RazorpayPeer,
    paypal_peer: PayPalPeer,
) -> None:
    settings = dataclasses.replace(
        db_settings,
        paypal_client_id=paypal_peer.client_id,
        paypal_client_secret=paypal_peer.client_secret,
        paypal_api_base=paypal_peer.base_url,
    )
    # A rule may name the configured "paypal" as its fallback (only primaries must be stored).
    rule = RoutingRule("shop-in", "shop-in/razorpay", fallbacks=("paypal",))
    register_provider(store, razorpay_account(razorpay_peer), [rule])
    handle = payment_service(settings)
    command = dataclasses.replace(
        authorize("shop-x", "DE", "EUR", payment_method=vault_for("4242424242424242")),
        provider="paypal",
    )
    reply = handle(command)
    assert isinstance(reply, PaymentAuthorized), reply
    assert reply.provider == "paypal"
    assert paypal_peer.orders_of_checkout(command.checkout_id) == [reply.payment_id]


def test_paypal_half_configured_refuses_to_start(db_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET"):
        payment_service(dataclasses.replace(db_settings, paypal_client_id="only-the-id"))


def test_paypal_as_the_fallback_while_the_primary_breaker_is_open(
    paypal_peer: PayPalPeer,
) -> None:
    registry = ProviderRegistry(build_gateway)
    registry.register(
        ProviderAccount("shop-eu/paypal", "shop-eu", "paypal", paypal_peer.client_id,
                        Secret(paypal_peer.client_secret), {"api_base": paypal_peer.base_url})
    )  # fmt: skip
    primary = FakeGateway(provider_name="shop-eu/stripe")
    gateways = {**registry.gateways, "shop-eu/stripe": primary}
    router = ProviderRouter(
        [RoutingRule("shop-eu", "shop-eu/stripe", fallbacks=("shop-eu/paypal",))]
    )
    service = PaymentService(gateways, router=router)
    try:
        service.breaker("shop-eu/stripe").open()
        command = authorize("shop-eu", "DE", "EUR", payment_method=vault_for("4242424242424242"))
        reply = service.handle(command)
        assert isinstance(reply, PaymentAuthorized), reply
        assert reply.provider == "shop-eu/paypal"
        assert paypal_peer.orders_of_checkout(command.checkout_id) == [reply.payment_id]
        assert primary.find_by_checkout(command.checkout_id) == []
    finally:
        service.close()
