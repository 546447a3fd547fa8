"""The pure aggregation: facts by identity, window assignment, metric rows of a recorded stream."""

from __future__ import annotations

import random

import pytest
from faust.windows import HoppingWindow, TumblingWindow

from analytics.facts import Kind, add, merge, observe
from analytics.metrics import percentile, rows
from analytics.windows import MINUTELY, QUARTER_HOURLY, WindowSpec, fold, window_starts
from events import messages as m
from events.envelope import Envelope
from tests.analytics_stream import EXPECTED, T0, recorded_stream


def test_the_recorded_stream_yields_exactly_the_expected_rows() -> None:
    windows = fold(recorded_stream("u"))
    assert {key: rows(state) for key, state in windows.items()} == EXPECTED


def test_a_redelivery_of_any_event_changes_no_window() -> None:
    stream = recorded_stream("u")
    once = fold(stream)
    rng = random.Random(7)
    # At-least-once: after a crash the consumer re-reads from its last committed offset, so
    # an event comes again after some of its successors.
    for _ in range(20):
        cut = rng.randrange(len(stream))
        back = rng.randrange(cut + 1)
        assert fold(stream[:cut] + stream[back:]) == once
    assert fold(stream + stream) == once


def test_a_window_is_the_same_whichever_order_its_checkouts_interleave() -> None:
    stream = recorded_stream("u")
    by_checkout: dict[str, list[Envelope]] = {}
    for env in stream:
        by_checkout.setdefault(env.checkout_id, []).append(env)
    # Partitions keep each checkout's order but not the order between checkouts.
    reordered = [env for cid in sorted(by_checkout, reverse=True) for env in by_checkout[cid]]
    assert fold(reordered) == fold(stream)


@pytest.mark.parametrize(
    ("spec", "window"),
    [(MINUTELY, TumblingWindow(60)), (QUARTER_HOURLY, HoppingWindow(900, 300))],
)
def test_window_starts_are_faust_s_window_ranges(spec: WindowSpec, window: object) -> None:
    rng = random.Random(3)
    for at in [
        T0,
        T0 + 59_999,
        T0 + 60_000,
        T0 - 1,
        T0 + 299_999,
        *(rng.randrange(T0, T0 + 10**8) for _ in range(200)),
    ]:
        # The runtime hands faust seconds with the milliseconds as a fraction.
        ranges = window.ranges(at / 1000)  # type: ignore[attr-defined]
        faust_starts = [int(start) * 1000 for start, _ in ranges]
        assert window_starts(spec, at) == faust_starts


def test_a_hopping_event_lands_in_three_windows_a_tumbling_one_in_one() -> None:
    assert window_starts(QUARTER_HOURLY, T0 + 1) == [T0 - 600_000, T0 - 300_000, T0]
    assert window_starts(MINUTELY, T0 + 59_999) == [T0]


def test_latency_needs_the_start_of_the_same_attempt() -> None:
    done = Envelope.new(
        m.StepSucceeded("c", m.Step.CALCULATE_TAX, 2), occurred_at=5_000, producer="t"
    )
    assert [f.kind for f in observe(done, {"calculate_tax/1": 1_000}).facts] == [Kind.STEP_OK]
    latency = observe(done, {"calculate_tax/2": 1_000}).facts[1]
    assert (latency.kind, latency.payload) == (Kind.LATENCY, ("calculate_tax", 4_000))


def test_a_timeout_and_the_verdict_on_it_are_one_failure() -> None:
    step = m.Step.AUTHORIZE_PAYMENT
    timed_out = observe(Envelope.new(m.StepTimedOut("c", step, 1), occurred_at=1, producer="t"), {})
    verdict = observe(
        Envelope.new(
            m.StepAttemptFailed("c", step, 1, "deadline", True), occurred_at=2, producer="t"
        ),
        {},
    )
    state = add(add(None, timed_out.facts), verdict.facts)
    assert rows(state)[("step_failures", "authorize_payment")] == 1


def test_add_does_not_change_the_state_it_is_given() -> None:
    first = add(None, observe(recorded_stream("u")[0], {}).facts)
    snapshot = {k: dict(v) for k, v in first.items()}
    add(first, observe(recorded_stream("v")[0], {}).facts)
    assert first == snapshot


def test_merge_is_the_union_of_facts() -> None:
    a = add(None, observe(recorded_stream("a")[0], {}).facts)
    b = add(None, observe(recorded_stream("b")[0], {}).facts)
    assert rows(merge([a, b, a]))[("checkouts_started", "all")] == 2


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 95, 99)] == [50, 95, 99]
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_money_is_never_summed_across_currencies() -> None:
    state = fold(recorded_stream("u"))[("checkout_metrics_quarter_hourly", T0)]
    assert {k: v for k, v in rows(state).items() if k[0] == "revenue"} == {
        ("revenue", "USD"): 1200,
        ("revenue", "EUR"): 900,
    }
