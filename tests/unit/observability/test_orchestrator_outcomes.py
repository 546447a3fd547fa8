"""A saga that fails or parks leaves exactly one WARNING line (checkout_id, step, reason) and
one count in saga_outcomes_total; the orchestrator handler is driven as the processor drives it
(handle, then on_commit or on_abort), with no broker: snapshots off, nothing is read back."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_REPLIES
from infra.metrics import Metrics
from infra.processor import Incoming, Output
from infra.workers.orchestrator import OrchestratorHandler, tick
from tests.unit.saga_harness import T0, start

SERDE = make_serde(None)
ORCHESTRATOR_LOGGER = "infra.workers.orchestrator"


class Driver:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.handler = OrchestratorHandler(
            "127.0.0.1:1", SERDE, snapshots=False, metrics=self.metrics
        )
        self.offset = 0

    def feed(self, topic: str, message: object, now: int, *, commit: bool = True) -> list[Output]:
        if isinstance(message, m.Tick):
            envelope: Envelope[object] = tick(0, now)
        else:
            envelope = Envelope.new(message, occurred_at=now, producer="test")
        self.offset += 1
        outputs = list(self.handler.handle(Incoming(topic, 0, self.offset, now, envelope, 100)))
        if commit:
            self.handler.on_commit()
        else:
            self.handler.on_abort()
        return outputs

    def outcome_count(self, outcome: str, step: str, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "saga_outcomes_total", {"outcome": outcome, "step": step, "reason": reason}
        )
        return value or 0.0


def commands(outputs: Sequence[Output]) -> list[object]:
    return [o.envelope.message for o in outputs]


def run_into_deadlines(driver: Driver, *, abort_each: bool = False) -> list[object]:
    """StartCheckout, then no adapter ever answers a forward step; compensations are answered.
    Ticks a minute apart until the saga fails; returns everything it produced. `abort_each`:
    every tick's transaction aborts once first (the processor rewinds and handles it again)."""
    produced = commands(driver.feed(CHECKOUT_COMMANDS, start("co-deadline"), T0))
    now = T0
    for _ in range(2_000):
        now += 60_000
        if abort_each:
            driver.feed(CHECKOUT_COMMANDS, m.Tick(0, now), now, commit=False)
        outputs = driver.feed(CHECKOUT_COMMANDS, m.Tick(0, now), now)
        produced.extend(commands(outputs))
        for message in commands(outputs):
            if isinstance(message, m.ReleaseInventory):
                reply = m.InventoryReleased(
                    message.checkout_id, message.attempt, message.reservation_id
                )
                produced.extend(commands(driver.feed(CHECKOUT_REPLIES, reply, now)))
        if any(isinstance(p, m.CheckoutFailed) for p in produced):
            break
    return produced


@pytest.mark.parametrize("abort_each", [False, True])
def test_a_saga_failed_on_a_step_deadline_logs_one_warning_with_step_and_reason(
    caplog: pytest.LogCaptureFixture, abort_each: bool
) -> None:
    caplog.set_level(logging.INFO)
    driver = Driver()
    produced = run_into_deadlines(driver, abort_each=abort_each)
    failed = [p for p in produced if isinstance(p, m.CheckoutFailed)]
    assert len(failed) == 1, "the saga never failed: the test drove it wrongly"
    # More ticks after the end: nothing new is said about it.
    for k in range(1, 5):
        driver.feed(CHECKOUT_COMMANDS, m.Tick(0, T0 + 10**9 + k), T0 + 10**9 + k)

    warnings = [
        r for r in caplog.records if r.name == ORCHESTRATOR_LOGGER and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    line = warnings[0]
    assert line.__dict__["checkout_id"] == "co-deadline"
    assert line.__dict__["step"] == failed[0].step
    assert line.__dict__["reason_code"] == "deadline"
    assert line.__dict__["reason"] == failed[0].reason
    assert failed[0].step in line.getMessage() and "deadline" in line.getMessage()
    assert driver.outcome_count("failed", failed[0].step, "deadline") == 1


def test_an_aborted_transaction_reports_nothing_and_a_cancel_is_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    driver = Driver()
    driver.feed(CHECKOUT_COMMANDS, start("co-cancel"), T0)
    cancel = m.CancelCheckout("co-cancel", "changed my mind")
    aborted = commands(driver.feed(CHECKOUT_COMMANDS, cancel, T0, commit=False))
    assert driver.outcome_count("cancelled", "", "cancelled") == 0
    produced = commands(driver.feed(CHECKOUT_COMMANDS, cancel, T0))
    assert [type(p) for p in produced] == [type(p) for p in aborted]  # the same decision
    now = T0
    while not any(isinstance(p, m.CheckoutCancelled) for p in produced):
        assert now < T0 + 3_600_000, "the cancel never finished"
        for message in [p for p in produced if isinstance(p, m.ReleaseInventory)]:
            reply = m.InventoryReleased(
                message.checkout_id, message.attempt, message.reservation_id
            )
            produced.extend(commands(driver.feed(CHECKOUT_REPLIES, reply, now)))
        now += 60_000
        produced.extend(commands(driver.feed(CHECKOUT_COMMANDS, m.Tick(0, now), now)))
    assert driver.outcome_count("cancelled", "", "cancelled") == 1
    mine = [r for r in caplog.records if r.name == ORCHESTRATOR_LOGGER]
    assert [r.levelno for r in mine if "cancelled" in r.getMessage()] == [logging.INFO]
    assert not [r for r in mine if r.levelno >= logging.WARNING]
