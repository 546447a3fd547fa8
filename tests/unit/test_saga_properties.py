"""Property tests: the checkout saga against a simulated world that delays, reorders,
duplicates and fails replies, moves the clock in jumps and sends cancels (see saga_world.py)."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from saga_harness import TOTAL
from saga_world import PARKED_OR_DONE, Script, World

from events import messages as m
from events.messages import Step
from saga.checkout import next_wakeup
from saga.state import COMPENSATION_STEPS, SagaState, Status

scripts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=90)
fast = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def run(choices: list[int]) -> tuple[World, SagaState]:
    world = World(Script(list(choices)))
    world.run()
    assert world.state is not None
    return world, world.state


@fast
@given(scripts)
def test_every_saga_settles_and_stays_safe(choices: list[int]) -> None:
    world, state = run(choices)
    assert world.violations == []
    assert state.status in PARKED_OR_DONE, state.status
    assert next_wakeup(state) is None or state.status is Status.NEEDS_ATTENTION
    assert world.replayed() == state  # the event log alone rebuilds the saga


@fast
@given(scripts)
def test_money_and_stock_balance_when_the_saga_settles(choices: list[int]) -> None:
    world, state = run(choices)
    if state.status is Status.NEEDS_ATTENTION:
        return  # parked: an operator owns the leftovers (checked separately below)
    captured = sum(p.captured for p in world.money.values())
    refunded = sum(p.refunded for p in world.money.values())
    held = {rid for rid, s in world.stock.items() if s.status in ("held", "committed")}
    authorizations = {
        pid for pid, p in world.money.items() if p.status in ("authorized", "action_required")
    }
    if state.status is Status.COMPLETED:
        assert captured - refunded == TOTAL
        assert held == {state.reservation_id}
        assert world.stock[state.reservation_id or ""].status == "committed"
        assert authorizations == set()
    else:
        assert captured - refunded == 0
        assert held == set(), held
        assert authorizations == set(), authorizations
    # The saga's own ledger agrees with the world.
    assert state.captured_amount - state.refunded_amount == captured - refunded


@fast
@given(scripts)
def test_idempotency_keys_are_unique_per_step_and_attempt(choices: list[int]) -> None:
    world, _ = run(choices)
    keys = Counter(c.idempotency_key for c in world.issued)
    assert [k for k, n in keys.items() if n > 1] == []


@fast
@given(scripts)
def test_compensation_undoes_completed_steps_in_reverse_order(choices: list[int]) -> None:
    world, state = run(choices)
    if state.failure is None:
        return
    reservation, payment = state.reservation_id, state.payment_id
    firsts: list[str] = []
    for command in world.issued:
        if isinstance(command, m.ReleaseInventory) and command.reservation_id == reservation:
            firsts.append("release") if "release" not in firsts else None
        if isinstance(command, m.VoidPayment) and command.payment_id == payment:
            firsts.append("void") if "void" not in firsts else None
    if firsts != ["release", "void"] and firsts != ["void", "release"]:
        return  # at most one of the two was ever held
    steps = state.steps
    stock_done = max(
        steps[Step.RESERVE_INVENTORY].completed_seq or 0,
        steps[Step.COMMIT_INVENTORY].completed_seq or 0,
    )
    auth_done = steps[Step.AUTHORIZE_PAYMENT].completed_seq or 0
    expected = ["release", "void"] if stock_done > auth_done else ["void", "release"]
    assert firsts == expected


@fast
@given(scripts)
def test_no_payment_command_after_out_of_stock(choices: list[int]) -> None:
    world, state = run(choices)
    if state.failure is None or state.failure.step is not Step.RESERVE_INVENTORY:
        return
    if state.failure.reason != "out_of_stock":
        return
    assert not any(isinstance(c, m.AuthorizePayment) for c in world.issued)


@fast
@given(scripts)
def test_a_finished_saga_is_never_reopened(choices: list[int]) -> None:
    world, _ = run(choices)
    finished = False
    endings = m.CheckoutCompleted | m.CheckoutFailed | m.CheckoutCancelled
    for event in world.log:
        if finished:
            # Only late resources may still be compensated; nothing goes forward again.
            assert not isinstance(event, endings | m.CompensationStarted | m.PaymentActionAwaited)
            if isinstance(event, m.StepStarted | m.StepRetryScheduled):
                assert event.step in COMPENSATION_STEPS, event
        finished = finished or isinstance(event, endings)


@fast
@given(scripts)
def test_every_webhook_is_recorded_exactly_once_whenever_it_arrives(choices: list[int]) -> None:
    world, state = run(choices)
    recorded = [e.provider_event_id for e in world.log if isinstance(e, m.PaymentSignalRecorded)]
    assert sorted(recorded) == sorted(set(world.webhooks_sent))
    assert state.seen_provider_event_ids == set(world.webhooks_sent)


@fast
@given(scripts)
def test_the_saga_never_waits_for_an_action_a_webhook_already_settled(choices: list[int]) -> None:
    world, _ = run(choices)
    settled: set[str] = set()
    for event in world.log:
        if isinstance(event, m.PaymentSignalRecorded):
            settled.add(event.payment_id)
        if isinstance(event, m.PaymentActionAwaited):
            assert event.payment_id not in settled, event
