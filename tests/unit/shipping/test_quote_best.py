"""quote_best with in-process fake carriers: selection rules, drop rules, fallback rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from adapters.shipping.port import (
    EXPRESS,
    STANDARD,
    Rate,
    Shipment,
    ShippingAddress,
    ShippingError,
    ShippingInputError,
    ShippingProviderError,
    ShippingRequest,
)
from adapters.shipping.quoting import FlatRate, quote_best
from tests.unit.shipping.shipping_contract import AUSTIN, shipment

FLAT = FlatRate({"USD": 1500, "EUR": 1400})


class Fake:
    def __init__(
        self,
        name: str,
        *answers: Rate,
        error: ShippingError | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.answers = list(answers)
        self.error = error
        self.gate = gate  # when set, quote() blocks until the gate opens: a hung carrier
        self.calls = 0

    def quote(self, request: ShippingRequest) -> list[Rate]:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return self.answers

    def create_shipment(
        self, request: ShippingRequest, rate: Rate, idempotency_key: str
    ) -> Shipment:
        raise NotImplementedError


def rate(
    carrier: str, amount: int, level: str = STANDARD, days: int | None = 5, currency: str = "USD"
) -> Rate:
    return Rate(carrier, level, amount, currency, days, service=f"{carrier}-{level}")


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # release hung fakes so their threads end


def test_cheapest_across_carriers() -> None:
    a = Fake("a", rate("A", 900), rate("A", 2500, EXPRESS))
    b = Fake("b", rate("B", 850), rate("B", 2600, EXPRESS))
    assert quote_best([a, b], shipment(), flat_rate=FLAT) == rate("B", 850)
    assert (a.calls, b.calls) == (1, 1)


def test_requested_service_level() -> None:
    a = Fake("a", rate("A", 900), rate("A", 2500, EXPRESS, 2))
    b = Fake("b", rate("B", 850), rate("B", 2600, EXPRESS, 1))
    assert quote_best([a, b], shipment(), service_level=EXPRESS) == rate("A", 2500, EXPRESS, 2)


def test_ties_go_to_the_faster_then_by_name() -> None:
    slow, fast = rate("Z", 900, days=6), rate("Y", 900, days=3)
    assert quote_best([Fake("z", slow), Fake("y", fast)], shipment()) == fast
    assert (
        quote_best([Fake("b", rate("B", 900)), Fake("a", rate("A", 900))], shipment()).carrier
        == "A"
    )


def test_failed_carriers_are_dropped() -> None:
    ok = Fake("ok", rate("OK", 1200))
    down = Fake("down", error=ShippingProviderError("503"))
    broken = Fake("broken", error=ShippingProviderError("bug"))
    broken.quote = lambda _r: 1 / 0  # type: ignore[assignment,method-assign,return-value]
    assert quote_best([down, broken, ok], shipment(), flat_rate=FLAT) == rate("OK", 1200)


def test_other_currencies_are_ignored() -> None:
    eur = Fake("eur", rate("E", 100, currency="EUR"))
    assert quote_best([eur], shipment(), flat_rate=FLAT).carrier == "flat_rate"


def test_hung_carrier_is_dropped_within_budget(gate: threading.Event) -> None:
    hung = Fake("hung", rate("H", 1), gate=gate)
    ok = Fake("ok", rate("OK", 1200))
    started = time.monotonic()
    assert quote_best([hung, ok], shipment(), timeout_s=0.2, flat_rate=FLAT).carrier == "OK"
    assert time.monotonic() - started < 0.2 + 0.15


def test_nobody_answers_means_flat_rate(gate: threading.Event) -> None:
    carriers = [Fake(f"c{i}", rate("C", 1), gate=gate) for i in range(4)]
    started = time.monotonic()
    chosen = quote_best(carriers, shipment(), timeout_s=0.2, flat_rate=FLAT)
    assert time.monotonic() - started < 0.2 + 0.15  # parallel: not 4 x 0.2 s
    assert chosen == Rate("flat_rate", STANDARD, 1500, "USD", None, service="flat")
    assert all(c.calls == 1 for c in carriers)


def test_no_answer_and_no_flat_rate_is_retryable() -> None:
    down = Fake("down", error=ShippingProviderError("503"))
    with pytest.raises(ShippingProviderError) as err:
        quote_best([down], shipment())
    assert err.value.retryable is True


def test_flat_rate_respects_its_countries_and_currencies() -> None:
    down = Fake("down", error=ShippingProviderError("503"))
    us_only = FlatRate({"USD": 1500}, countries={"US"})
    assert quote_best([down], shipment(), flat_rate=us_only).amount == 1500
    berlin = shipment(ShippingAddress("Dam 1", "Berlin", "", "10115", "DE"))
    with pytest.raises(ShippingProviderError):
        quote_best([down], berlin, flat_rate=us_only)
    with pytest.raises(ShippingProviderError):
        quote_best([down], shipment(currency="GBP"), flat_rate=us_only)


def test_every_carrier_rejecting_is_permanent_not_flat_rate() -> None:
    carriers = [Fake(n, error=ShippingInputError(f"{n}: cannot ship there")) for n in "ab"]
    with pytest.raises(ShippingInputError) as err:
        quote_best(carriers, shipment(), flat_rate=FLAT)
    assert err.value.retryable is False


def test_one_rejection_and_one_outage_still_gets_the_flat_rate() -> None:
    carriers = [
        Fake("a", error=ShippingInputError("no")),
        Fake("b", error=ShippingProviderError("x")),
    ]
    assert quote_best(carriers, shipment(), flat_rate=FLAT).carrier == "flat_rate"


@pytest.mark.parametrize(
    "request_",
    [
        ShippingRequest("USD", (), AUSTIN),
        shipment(AUSTIN, (0, 100)),
        shipment(ShippingAddress("1 Main", "X", "", "12345", "USA")),
        shipment(ShippingAddress("1 Main", "X", "TX", "1234", "US")),
        shipment(currency="dollars"),
    ],
)
def test_bad_input_is_rejected_before_any_carrier_is_asked(request_: ShippingRequest) -> None:
    carrier = Fake("a", rate("A", 100))
    with pytest.raises(ShippingInputError):
        quote_best([carrier], request_, flat_rate=FLAT)
    assert carrier.calls == 0


def test_unknown_service_level_is_rejected() -> None:
    with pytest.raises(ShippingInputError, match="service level"):
        quote_best([Fake("a", rate("A", 100))], shipment(), service_level="overnight")
