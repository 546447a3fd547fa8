"""The real adapter services on whatever the settings point at (embedded or external)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from db.migrate import upgrade
from infra.settings import ConfigError, Settings, require
from infra.workers.adapter import LANES


def _connect(database_url: str) -> Callable[[], psycopg.Connection]:
    def connect() -> psycopg.Connection:
        return psycopg.connect(database_url)

    return connect


def payment_service(settings: Settings) -> Callable[[Any], Any]:
    """Every provider account behind the refund ledger, routed by the registry, authorizing
    with the PostgreSQL attempt log (`payment_attempts`).

    Default: the configured Stripe account (the embedded localstripe in dev/test) as "stripe"
    for every tenant. When the `payment_providers` table has rows (registered with
    `adapters.payments.registry.register_provider` or `python -m infra.providers_cli
    register`), those accounts and their `payment_routes` rules are added; they need
    PAYMENT_PROVIDERS_KEY to decrypt, and starting without it fails rather than misroutes.
    With PAYPAL_CLIENT_ID/PAYPAL_CLIENT_SECRET the PayPal app is registered as "paypal", for
    tenants' rules to name as primary or fallback (a stored "paypal" overrides it).
    """
    from adapters.payments.attempt_log import PostgresAttemptLog
    from adapters.payments.refund_ledger import LedgerGuardedGateway, RefundLedger
    from adapters.payments.registry import (
        ANY_TENANT,
        ProviderAccount,
        ProviderRegistry,
        Secret,
        build_gateway,
        stored_providers,
    )
    from adapters.payments.service import PaymentService

    assert settings.database_url
    # No default key: the embedded stack generates one for its localstripe.
    require(settings, "stripe_api_key", who="the payment worker")
    assert settings.stripe_api_key
    upgrade(settings.database_url)
    connect = _connect(settings.database_url)
    ledger = RefundLedger(connect)
    # Authorizations are recorded before they are sent, so a restarted worker still knows which
    # payment (or unanswered request) each attempt left, without listing the provider's account.
    # Three short transactions per authorization: pooled, not a new connection each.
    pool: ConnectionPool[Any] = ConnectionPool(
        settings.database_url, min_size=0, max_size=4, open=True, name="payment-attempts"
    )
    attempts = PostgresAttemptLog(pool.connection)
    # Our record of PayPal orders per checkout (PayPal cannot list them), shared by workers.
    paypal_index = None
    if settings.redis_url:
        from adapters.payments.paypal_gateway import RedisOrderIndex

        paypal_index = RedisOrderIndex(redis.Redis.from_url(settings.redis_url))
    # Refunds must pass the ledger: it is what stops concurrent refunds exceeding the capture.
    registry = ProviderRegistry(
        lambda account: LedgerGuardedGateway(
            build_gateway(account, attempts, paypal_index=paypal_index), ledger
        )
    )
    options = {"api_base": settings.stripe_api_base} if settings.stripe_api_base else {}
    default = ProviderAccount(
        "stripe", ANY_TENANT, "stripe", "", Secret(settings.stripe_api_key), options
    )
    accounts, rules = stored_providers(connect, settings.payment_providers_key)
    configured = [default, *_paypal_account(settings)]
    for account in configured:
        if not any(a.key == account.key for a in accounts):  # a stored one overrides
            registry.register(account)
    for account in accounts:
        registry.register(account)
    for rule in rules:
        registry.add_rule(rule)
    return PaymentService(
        registry.gateways,
        router=registry.router,
        breaker_reset_s=settings.payment_breaker_reset_s,
        # A call per lane at once: with fewer, a lane's call waited behind hung ones and timed
        # out unsent (docs/chaos.md finding 7).
        max_workers=LANES,
    ).handle


def _paypal_account(settings: Settings) -> list[Any]:
    """The configured PayPal app as provider "paypal" for every tenant whose rules name it
    (primary or fallback); none when PAYPAL_CLIENT_ID/SECRET are unset."""
    from adapters.payments.registry import ANY_TENANT, ProviderAccount, Secret

    client_id, secret = settings.paypal_client_id, settings.paypal_client_secret
    if not client_id and not secret:
        return []
    if not (client_id and secret):
        raise ConfigError("PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET must be set together")
    options = {"api_base": settings.paypal_api_base} if settings.paypal_api_base else {}
    return [ProviderAccount("paypal", ANY_TENANT, "paypal", client_id, Secret(secret), options)]


def tax_service(settings: Settings) -> Callable[[Any], Any]:
    from adapters.tax.factory import build_tax_calculator
    from adapters.tax.service import TaxService

    client = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
    calculator = build_tax_calculator(
        settings.taxjar_api_key,
        settings.tax_fallback_policy,
        redis_client=client,
        taxjar_api_url=settings.taxjar_api_url,
    )
    return TaxService(calculator).handle


def stock_store(settings: Settings) -> Any:
    """The PostgreSQL stock tables, for the inventory adapter and for `saga stock`."""
    from adapters.inventory import postgres

    assert settings.database_url
    upgrade(settings.database_url)
    return postgres.PostgresInventory(_connect(settings.database_url))


def inventory_service(settings: Settings) -> Callable[[Any], Any]:
    """Never touches stock levels: a worker that (re)starts must not put sold units back on
    sale. Levels change only by an explicit act (`saga stock set|load`)."""
    from adapters.inventory.service import InventoryService

    return InventoryService(stock_store(settings)).handle


def shipping_service(settings: Settings) -> Callable[[Any], Any]:
    from adapters.shipping.quoting import FlatRate
    from adapters.shipping.rate_table_carrier import RateTableCarrier
    from adapters.shipping.service import ShippingService
    from infra.workers.fulfilment import LabelCarrier

    # The flat rate is what a shop charges when no carrier answers in time.
    flat = FlatRate({"USD": 999, "EUR": 999, "GBP": 899})
    carrier = LabelCarrier.from_settings(settings)
    if carrier.easypost_api_key is None:
        return ShippingService([RateTableCarrier()], flat_rate=flat).handle
    from adapters.shipping.easypost_client import EasyPostClient

    # EasyPost quotes what it will sell the label for (EASYPOST_API_KEY + SHIP_FROM_*).
    assert carrier.ship_from is not None
    easypost = EasyPostClient(
        carrier.easypost_api_key, from_address=carrier.ship_from, base_url=carrier.easypost_api_base
    )
    return ShippingService([easypost], flat_rate=flat).handle


def build_default_services(settings: Settings) -> dict[str, Callable[[Any], Any]]:
    """Notification is wired only where an email transport is configured; the saga does not
    send SendNotification yet (see the notes of issue 5)."""
    return {
        "inventory": inventory_service(settings),
        "tax": tax_service(settings),
        "shipping": shipping_service(settings),
        "payment": payment_service(settings),
    }
