"""TaxJar outages under both fallback policies, the breaker, and bounded retries — through
TaxService, i.e. the replies the saga will actually see."""

from __future__ import annotations

import pytest

from adapters.tax.policy import FallbackPolicy, PolicyTaxCalculator
from adapters.tax.port import (
    SOURCE_RATE_TABLE_FALLBACK,
    SOURCE_TAXJAR,
    TaxCalculator,
    TaxProviderUnavailable,
)
from adapters.tax.rate_table import RateTableCalculator
from adapters.tax.resilient import ResilientTaxCalculator, tax_breaker
from adapters.tax.service import TaxService
from adapters.tax.taxjar_calculator import TaxJarCalculator
from events.messages import Address, CalculateTax, LineItem, TaxCalculated, TaxCalculationFailed
from tests.integration.tax.taxjar_peer import TaxJarPeer
from tests.unit.tax.tax_contract import LA, order

pytestmark = pytest.mark.integration

OUTAGES = [429, 500, 503, "hang", "garbage"]


def no_sleep(_: float) -> None:
    """Backoff is tenacity's job and tested there; these tests must not wait for it."""


def resilient(
    peer: TaxJarPeer,
    unique_id: str,
    *,
    api_key: str | None = None,
    retries: int = 0,
    fail_max: int = 5,
) -> ResilientTaxCalculator:
    return ResilientTaxCalculator(
        TaxJarCalculator(api_key or peer.api_key, api_url=peer.url, timeout_s=0.3),
        breaker=tax_breaker(f"taxjar-{unique_id}", fail_max=fail_max),
        timeout_s=2.0,
        retries=retries,
        sleep=no_sleep,
    )


def service(primary: TaxCalculator, policy: FallbackPolicy) -> TaxService:
    return TaxService(PolicyTaxCalculator(primary, RateTableCalculator(), policy))


def command(
    unique_id: str, country: str = "US", state: str = "CA", postal: str = "90012"
) -> CalculateTax:
    return CalculateTax(
        checkout_id=f"co-{unique_id}",
        attempt=1,
        idempotency_key=f"co-{unique_id}:tax:1",
        currency="USD",
        items=(LineItem("SKU-A", 2, 5000),),
        shipping_address=Address("200 N Spring St", "Los Angeles", state, postal, country),
    )


@pytest.mark.parametrize("outage", OUTAGES)
def test_block_policy_fails_the_step_retryably(
    taxjar_peer: TaxJarPeer, unique_id: str, outage: int | str
) -> None:
    taxjar_peer.always = outage
    reply = service(resilient(taxjar_peer, unique_id), FallbackPolicy.BLOCK).handle(
        command(unique_id)
    )
    assert isinstance(reply, TaxCalculationFailed)
    assert reply.retryable is True
    assert (reply.checkout_id, reply.attempt) == (f"co-{unique_id}", 1)


@pytest.mark.parametrize("outage", OUTAGES)
def test_fallback_policy_uses_the_table_and_says_so(
    taxjar_peer: TaxJarPeer, unique_id: str, outage: int | str
) -> None:
    taxjar_peer.always = outage
    reply = service(resilient(taxjar_peer, unique_id), FallbackPolicy.FALLBACK_RATES).handle(
        command(unique_id)
    )
    assert reply == TaxCalculated(f"co-{unique_id}", 1, 950, "USD", SOURCE_RATE_TABLE_FALLBACK)
    assert taxjar_peer.request_count >= 1  # TaxJar was really asked first


def test_healthy_taxjar_is_the_source(taxjar_peer: TaxJarPeer, unique_id: str) -> None:
    reply = service(resilient(taxjar_peer, unique_id), FallbackPolicy.FALLBACK_RATES).handle(
        command(unique_id)
    )
    assert reply == TaxCalculated(f"co-{unique_id}", 1, 950, "USD", SOURCE_TAXJAR)


def test_rejected_key_blocks_permanently_or_falls_back(
    taxjar_peer: TaxJarPeer, unique_id: str
) -> None:
    calc = resilient(taxjar_peer, unique_id, api_key="revoked", retries=2)
    blocked = service(calc, FallbackPolicy.BLOCK).handle(command(unique_id))
    assert isinstance(blocked, TaxCalculationFailed)
    assert blocked.retryable is False and "401" in blocked.reason
    assert taxjar_peer.request_count == 1  # a 401 is not retried
    fell_back = service(calc, FallbackPolicy.FALLBACK_RATES).handle(command(unique_id))
    assert isinstance(fell_back, TaxCalculated)
    assert fell_back.source == SOURCE_RATE_TABLE_FALLBACK


@pytest.mark.parametrize("policy", list(FallbackPolicy))
def test_bad_input_never_falls_back(
    taxjar_peer: TaxJarPeer, unique_id: str, policy: FallbackPolicy
) -> None:
    # TaxJar says the zip is not in the state: taxing it from the table would hide the error.
    reply = service(resilient(taxjar_peer, unique_id), policy).handle(
        command(unique_id, state="NY", postal="90012")
    )
    assert isinstance(reply, TaxCalculationFailed)
    assert reply.retryable is False
    assert "to_state NY" in reply.reason


@pytest.mark.parametrize(("country", "postal"), [("ZZ", "12345"), ("US", "9001X")])
def test_unsupported_country_or_malformed_postcode_is_a_clean_rejection(
    taxjar_peer: TaxJarPeer, unique_id: str, country: str, postal: str
) -> None:
    reply = service(resilient(taxjar_peer, unique_id), FallbackPolicy.FALLBACK_RATES).handle(
        command(unique_id, country=country, postal=postal)
    )
    assert isinstance(reply, TaxCalculationFailed)
    assert reply.retryable is False
    assert taxjar_peer.request_count == 0  # rejected before any network call


def test_outage_for_a_country_the_table_lacks_stays_retryable(
    taxjar_peer: TaxJarPeer, unique_id: str
) -> None:
    taxjar_peer.always = 503
    reply = service(resilient(taxjar_peer, unique_id), FallbackPolicy.FALLBACK_RATES).handle(
        command(unique_id, country="CA", state="ON", postal="K1A 0B1")
    )
    assert isinstance(reply, TaxCalculationFailed)
    assert reply.retryable is True
    assert "fallback rates unavailable" in reply.reason


def test_transient_errors_are_retried_within_the_bound(
    taxjar_peer: TaxJarPeer, unique_id: str
) -> None:
    taxjar_peer.script(503, 429)
    quote = resilient(taxjar_peer, unique_id, retries=2).calculate(order(LA, (2, 5000)))
    assert (quote.amount, quote.source) == (950, SOURCE_TAXJAR)
    assert taxjar_peer.request_count == 3


def test_breaker_opens_after_repeated_failures(taxjar_peer: TaxJarPeer, unique_id: str) -> None:
    taxjar_peer.always = 500
    calc = resilient(taxjar_peer, unique_id, fail_max=3)
    for _ in range(3):
        with pytest.raises(TaxProviderUnavailable):
            calc.calculate(order(LA, (1, 1000)))
    assert taxjar_peer.request_count == 3
    with pytest.raises(TaxProviderUnavailable) as err:
        calc.calculate(order(LA, (1, 1000)))
    assert "circuit open" in err.value.reason
    assert taxjar_peer.request_count == 3  # open breaker: TaxJar not called
    # With fallback_rates the open breaker still yields a (labelled) answer, without TaxJar.
    reply = service(calc, FallbackPolicy.FALLBACK_RATES).handle(command(unique_id))
    assert isinstance(reply, TaxCalculated) and reply.source == SOURCE_RATE_TABLE_FALLBACK
    assert taxjar_peer.request_count == 3


def test_input_errors_do_not_trip_the_breaker(taxjar_peer: TaxJarPeer, unique_id: str) -> None:
    calc = resilient(taxjar_peer, unique_id, fail_max=2)
    svc = service(calc, FallbackPolicy.BLOCK)
    for _ in range(4):
        bad = svc.handle(command(unique_id, state="NY", postal="90012"))
        assert isinstance(bad, TaxCalculationFailed) and bad.retryable is False
    good = svc.handle(command(unique_id))
    assert isinstance(good, TaxCalculated) and good.source == SOURCE_TAXJAR
