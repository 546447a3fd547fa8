"""The 24 h tax cache on the real (embedded) Redis, with TaxJar behind it counting requests."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from adapters.tax.cached import DAY_S, CachedTaxCalculator
from adapters.tax.factory import build_tax_calculator
from adapters.tax.policy import FallbackPolicy, PolicyTaxCalculator
from adapters.tax.port import (
    SOURCE_RATE_TABLE_FALLBACK,
    SOURCE_TAXJAR,
    TaxAddress,
    TaxInputError,
)
from adapters.tax.rate_table import RateTableCalculator
from adapters.tax.resilient import ResilientTaxCalculator, tax_breaker
from adapters.tax.service import TaxService
from adapters.tax.taxjar_calculator import TaxJarCalculator
from events.messages import Address, CalculateTax, LineItem, TaxCalculated
from infra.settings import Settings
from tests.integration.tax.taxjar_peer import TaxJarPeer
from tests.unit.tax.tax_contract import AUSTIN, LA, order

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_client(settings: Settings) -> redis.Redis:
    assert settings.redis_url
    return redis.Redis.from_url(settings.redis_url)


def cached(peer: TaxJarPeer, client: redis.Redis, unique_id: str) -> CachedTaxCalculator:
    remote = ResilientTaxCalculator(
        TaxJarCalculator(peer.api_key, api_url=peer.url, timeout_s=0.5),
        breaker=tax_breaker(f"taxjar-{unique_id}"),
        timeout_s=2.0,
        retries=0,
    )
    return CachedTaxCalculator(remote, client, prefix=f"tax:test:{unique_id}:")


def test_cache_hit_does_not_call_taxjar(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    calc = cached(taxjar_peer, redis_client, unique_id)
    first = calc.calculate(order(LA, (2, 5000)))
    second = calc.calculate(order(LA, (2, 5000)))
    assert first == second
    assert (second.amount, second.source) == (950, SOURCE_TAXJAR)
    assert taxjar_peer.request_count == 1


def test_entries_live_24_hours(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    calc = cached(taxjar_peer, redis_client, unique_id)
    request = order(LA, (2, 5000))
    calc.calculate(request)
    ttl = redis_client.ttl(calc.key(request))
    assert isinstance(ttl, int) and DAY_S - 60 < ttl <= DAY_S


def test_differently_spelled_same_address_hits(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    calc = cached(taxjar_peer, redis_client, unique_id)
    calc.calculate(order(LA, (2, 5000)))
    messy = TaxAddress(" 200 N  SPRING st", "los angeles ", "ca", "90012 ", "us")
    assert calc.calculate(order(messy, (2, 5000))).amount == 950
    assert taxjar_peer.request_count == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda r: order(LA, (3, 5000)),  # quantity
        lambda r: order(LA, (2, 5001)),  # price
        lambda r: order(AUSTIN, (2, 5000)),  # destination
        lambda r: order(LA, (2, 5000), shipping=500),  # shipping
        lambda r: dataclasses.replace(r, currency="CAD"),  # currency
    ],
)
def test_inputs_that_matter_miss(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str, change: object
) -> None:
    calc = cached(taxjar_peer, redis_client, unique_id)
    base = order(LA, (2, 5000))
    calc.calculate(base)
    calc.calculate(change(base))  # type: ignore[operator]
    assert taxjar_peer.request_count == 2


def test_hit_survives_a_taxjar_outage(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    calc = cached(taxjar_peer, redis_client, unique_id)
    calc.calculate(order(LA, (2, 5000)))
    taxjar_peer.always = 503
    policy = PolicyTaxCalculator(calc, RateTableCalculator(), FallbackPolicy.BLOCK)
    assert policy.calculate(order(LA, (2, 5000))).source == SOURCE_TAXJAR
    assert taxjar_peer.request_count == 1


def test_fallback_answers_are_not_cached(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    policy = PolicyTaxCalculator(
        cached(taxjar_peer, redis_client, unique_id),
        RateTableCalculator(),
        FallbackPolicy.FALLBACK_RATES,
    )
    taxjar_peer.always = 503
    assert policy.calculate(order(LA, (2, 5000))).source == SOURCE_RATE_TABLE_FALLBACK
    taxjar_peer.always = None
    assert policy.calculate(order(LA, (2, 5000))).source == SOURCE_TAXJAR
    assert taxjar_peer.request_count == 2


def test_bad_input_is_rejected_before_redis_or_taxjar(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    calc = cached(taxjar_peer, redis_client, unique_id)
    with pytest.raises(TaxInputError):
        calc.calculate(order(TaxAddress("1 Main", "X", "CA", "ABCDE", "US"), (1, 100)))
    assert taxjar_peer.request_count == 0


def test_redis_down_degrades_to_no_cache(taxjar_peer: TaxJarPeer, unique_id: str) -> None:
    dead = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    calc = cached(taxjar_peer, dead, unique_id)
    assert calc.calculate(order(LA, (2, 5000))).amount == 950
    assert calc.calculate(order(LA, (2, 5000))).amount == 950
    assert taxjar_peer.request_count == 2


def test_factory_wires_taxjar_cache_and_policy(
    taxjar_peer: TaxJarPeer, redis_client: redis.Redis, unique_id: str
) -> None:
    svc = TaxService(
        build_tax_calculator(
            taxjar_peer.api_key,
            "fallback_rates",
            redis_client=redis_client,
            taxjar_api_url=taxjar_peer.url,
            breaker=tax_breaker(f"taxjar-{unique_id}"),
            retries=0,
            timeout_s=0.5,
        )
    )
    # a unique price per test keeps this test's cache key away from every other test's
    cmd = CalculateTax(
        f"co-{unique_id}",
        1,
        f"co-{unique_id}:tax:1",
        "USD",
        (LineItem("SKU-A", 1, 10_000 + int(unique_id[:4], 16)),),
        Address("200 N Spring St", "Los Angeles", "CA", "90012", "US"),
    )
    first, second = svc.handle(cmd), svc.handle(cmd)
    assert isinstance(first, TaxCalculated) and first == second
    assert first.source == SOURCE_TAXJAR
    assert taxjar_peer.request_count == 1
    taxjar_peer.always = 503
    other = dataclasses.replace(cmd, items=(LineItem("SKU-B", 1, 10_000),))
    fallback = svc.handle(other)
    assert isinstance(fallback, TaxCalculated)
    assert (fallback.amount, fallback.source) == (950, SOURCE_RATE_TABLE_FALLBACK)


def test_factory_without_key_is_the_rate_table() -> None:
    calc = build_tax_calculator(None)
    assert calc.calculate(order(LA, (2, 5000))).source == "rate_table"
