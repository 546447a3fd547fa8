"""The worker metrics: names, labels, and that each thing counted moves its own series."""

from __future__ import annotations

import pybreaker
import pytest

from adapters.resilience import make_breaker
from events import messages as m
from events.envelope import Envelope
from infra.metrics import Metrics, dlq_reason, watch_breakers
from infra.processor import Incoming
from infra.workers.adapter import AdapterHandler
from infra.workers.outcomes import REASON_CODES, outcome_of, reason_code
from saga.checkout import RESERVATION_LAPSED
from saga.verdicts import ACTION_TIMED_OUT, TIMED_OUT

PROCESSOR_FAMILIES = {
    "processor_inputs",
    "processor_batch_size",
    "processor_handle_seconds",
    "processor_commit_seconds",
    "processor_dlq_records",
    "processor_consumer_lag",
    "saga_outcomes",
    "adapter_replies",
    "adapter_fallbacks",
    "breaker_state",
    "integration_calls",
}


def test_one_registry_holds_every_worker_family() -> None:
    names = {family.name for family in Metrics().registry.collect()}
    assert names == PROCESSOR_FAMILIES


def test_two_processes_worth_of_metrics_never_collide() -> None:
    a, b = Metrics(), Metrics()
    a.inputs.labels("p", "t").inc()
    assert (
        b.registry.get_sample_value("processor_inputs_total", {"processor": "p", "topic": "t"})
        is None
    )


class FakeRecord:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


def test_a_polled_batch_counts_inputs_by_topic_and_its_size() -> None:
    metrics = Metrics()
    bound = metrics.processor("orchestrator")
    bound.polled([FakeRecord("checkout.commands")] * 3 + [FakeRecord("checkout.replies")])  # type: ignore[list-item]
    bound.polled([])
    get = metrics.registry.get_sample_value
    assert (
        get("processor_inputs_total", {"processor": "orchestrator", "topic": "checkout.commands"})
        == 3
    )
    assert (
        get("processor_inputs_total", {"processor": "orchestrator", "topic": "checkout.replies"})
        == 1
    )
    assert get("processor_batch_size_count", {"processor": "orchestrator"}) == 1
    assert get("processor_batch_size_sum", {"processor": "orchestrator"}) == 4


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("DecodeError: not avro", "undecodable"),
        ("WrongTopic: StartCheckout is not carried by checkout.replies", "wrong_topic"),
        ("PermanentFailure (not retried): unknown checkout", "permanent"),
        ("RuntimeError after 3 attempts: boom", "retries_exhausted"),
        ("something else", "other"),
    ],
)
def test_dead_letter_errors_become_short_reason_codes(error: str, code: str) -> None:
    metrics = Metrics()
    metrics.processor("adapter-tax").dead_lettered("adapter.tax.requests", error)
    labels = {"processor": "adapter-tax", "topic": "adapter.tax.requests", "reason": code}
    assert dlq_reason(error) == code
    assert metrics.registry.get_sample_value("processor_dlq_records_total", labels) == 1


def test_breakers_report_their_state_and_every_call_through_them() -> None:
    metrics = Metrics()
    unwatch = watch_breakers(metrics)
    try:
        breaker = make_breaker("obs-test-provider", fail_max=2, exclude=[KeyError])
    finally:
        unwatch()
    get = metrics.registry.get_sample_value
    assert get("breaker_state", {"breaker": "obs-test-provider"}) == 0
    breaker.call(lambda: None)
    with pytest.raises(KeyError):  # a business refusal: the provider answered
        breaker.call(lambda: {}["x"])

    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        breaker.call(down)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(down)  # the second failure opens it
    calls = {"integration": "obs-test-provider"}
    assert get("integration_calls_total", {**calls, "outcome": "success"}) == 2
    assert get("integration_calls_total", {**calls, "outcome": "failure"}) == 2
    assert get("breaker_state", {"breaker": "obs-test-provider"}) == 2


def incoming(message: object) -> Incoming:
    envelope = Envelope.new(message, occurred_at=1, producer="test")
    return Incoming("adapter.tax.requests", 0, 0, 1, envelope, 10)


def test_adapter_replies_are_counted_by_type_and_fallbacks_apart() -> None:
    metrics = Metrics()
    replies = iter(
        [
            m.TaxCalculated("co-1", 1, 100, "USD", "taxjar"),
            m.TaxCalculated("co-1", 1, 100, "USD", "rate_table_fallback"),
            m.TaxCalculationFailed("co-1", 1, "no rate", False),
        ]
    )
    handler = AdapterHandler("tax", lambda _cmd: next(replies), metrics=metrics)
    command = m.CalculateTax("co-1", 1, "k", "USD", (), m.Address("1", "c", "s", "p", "US"))
    for _ in range(3):
        handler.handle(incoming(command))
    get = metrics.registry.get_sample_value
    ok = {"adapter": "tax", "reply": "TaxCalculated", "outcome": "ok"}
    failed = {"adapter": "tax", "reply": "TaxCalculationFailed", "outcome": "failed"}
    assert get("adapter_replies_total", ok) == 2
    assert get("adapter_replies_total", failed) == 1
    assert get("adapter_fallbacks_total", {"adapter": "tax"}) == 1


def test_flat_rate_shipping_counts_as_a_fallback() -> None:
    metrics = Metrics()
    quote = m.ShippingQuoted("co-1", 1, 999, "USD", "flat_rate", "standard")
    AdapterHandler("shipping", lambda _cmd: quote, metrics=metrics).handle(incoming(object()))
    assert (
        metrics.registry.get_sample_value("adapter_fallbacks_total", {"adapter": "shipping"}) == 1
    )


@pytest.mark.parametrize(
    ("reason", "step", "code"),
    [
        (f"{TIMED_OUT} (gave up after 3 attempts)", m.Step.RESERVE_INVENTORY, "deadline"),
        (ACTION_TIMED_OUT, m.Step.AUTHORIZE_PAYMENT, "action_timeout"),
        (RESERVATION_LAPSED, m.Step.RESERVE_INVENTORY, "reservation_lapsed"),
        (
            "taxjar unavailable (gave up after 4 attempts)",
            m.Step.CALCULATE_TAX,
            "retries_exhausted",
        ),
        ("Your card was declined.", m.Step.AUTHORIZE_PAYMENT, "declined"),
        ("insufficient stock for sku-1", m.Step.RESERVE_INVENTORY, "rejected"),
    ],
)
def test_failure_reasons_map_to_a_closed_set_of_codes(reason: str, step: str, code: str) -> None:
    assert reason_code(reason, step) == code
    assert code in REASON_CODES
    ended = outcome_of(m.CheckoutFailed("co-1", m.Step(step), reason), "msg-1")
    assert ended is not None and ended.reason_code == code and ended.reason == reason


def test_parked_and_non_ending_events() -> None:
    parked = outcome_of(
        m.CheckoutNeedsAttention(
            "co-1", m.Step.VOID_PAYMENT, "void_payment of pi failed permanently: x"
        ),
        "msg-1",
    )
    assert parked is not None and parked.outcome == "needs_attention"
    assert parked.reason_code == "compensation_refused" and parked.reason_code in REASON_CODES
    assert (
        outcome_of(m.CheckoutCancelled("co-1", "changed my mind"), "m").reason_code == "cancelled"
    )  # type: ignore[union-attr]
    assert outcome_of(m.StepTimedOut("co-1", m.Step.CALCULATE_TAX, 1), "m") is None


def test_a_served_worker_registry_also_has_the_process_collectors() -> None:
    names = {family.name for family in Metrics(process=True).registry.collect()}
    assert names > PROCESSOR_FAMILIES
    assert {"process_resident_memory_bytes", "python_gc_collections"} <= names
