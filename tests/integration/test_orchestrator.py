"""The orchestrator on the real broker, with scripted adapter processors."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS
from infra.bootstrap import build_processor
from infra.embedded.stack import RunningStack
from infra.metrics import Metrics
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.integration.kafka_helpers import Seen, produce, read_topic
from tests.integration.scripted_adapters import DECLINED_METHOD, OUT_OF_STOCK_SKU, ScriptedWorld
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled)


@pytest.fixture(scope="module")
def engine_settings(stack: RunningStack) -> Settings:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    return settings


def start_checkout(
    settings: Settings, *, sku: str = "SKU-1", payment_method: str = "pm_card_visa"
) -> str:
    checkout_id = f"co-{uuid.uuid4().hex[:10]}"
    command = m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-1",
        customer_id="cus-1",
        customer_email="buyer@example.com",
        currency="EUR",
        items=(m.LineItem(sku, 2, 1250), m.LineItem("SKU-2", 1, 500)),
        shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        payment_provider="stripe",
        payment_method=payment_method,
    )
    assert settings.kafka_bootstrap_servers
    produce(
        settings.kafka_bootstrap_servers,
        CHECKOUT_COMMANDS,
        SERDE,
        [Envelope.new(command, occurred_at=int(time.time() * 1000), producer="test")],
    )
    return checkout_id


def history(settings: Settings, checkout_id: str, timeout_s: float = 90) -> list[Any]:
    """The checkout's events, read until the saga reached a terminal event."""
    assert settings.kafka_bootstrap_servers

    def mine(records: list[Seen]) -> list[Any]:
        # Deduplicated by message id, as every consumer must (docs/decisions/0006).
        unique = {}
        for r in records:
            if r.key == checkout_id.encode():
                envelope = SERDE.decode(r.value, CHECKOUT_EVENTS)
                unique.setdefault(envelope.message_id, envelope.message)
        return list(unique.values())

    seen: list[Seen] = []

    def finished(records: list[Seen]) -> bool:
        seen[:] = records
        return any(isinstance(e, TERMINAL) for e in mine(records))

    try:
        read_topic(
            settings.kafka_bootstrap_servers, CHECKOUT_EVENTS, timeout_s=timeout_s, until=finished
        )
    except AssertionError as e:
        names = [type(x).__name__ for x in mine(seen)]
        raise AssertionError(f"{checkout_id} did not finish; its events: {names}") from e
    return mine(seen)


@pytest.fixture
def world_and_adapters(engine_settings: Settings) -> Iterator[ScriptedWorld]:
    world = ScriptedWorld()
    adapters = [
        build_processor(
            role, engine_settings, services=world.services(), instance_id=uuid.uuid4().hex[:6]
        )
        for role in ("inventory", "tax", "shipping", "payment", "notification")
    ]
    with running(*adapters):
        yield world


def orchestrator(settings: Settings) -> Any:
    return build_processor("orchestrator", settings, instance_id=uuid.uuid4().hex[:6])


def test_happy_path_completes_and_places_the_order(
    engine_settings: Settings, world_and_adapters: ScriptedWorld
) -> None:
    world = world_and_adapters
    with running(orchestrator(engine_settings)):
        checkout_id = start_checkout(engine_settings)
        events = history(engine_settings, checkout_id)
    completed = [e for e in events if isinstance(e, m.CheckoutCompleted)]
    assert len(completed) == 1
    done = completed[0]
    assert done.subtotal == 3000 and done.tax == 300 and done.shipping == 500
    assert done.total == 3800
    assert world.captured[checkout_id] == 3800


def test_declined_payment_compensates_the_reservation(
    engine_settings: Settings, world_and_adapters: ScriptedWorld
) -> None:
    world = world_and_adapters
    with running(orchestrator(engine_settings)):
        checkout_id = start_checkout(engine_settings, payment_method=DECLINED_METHOD)
        events = history(engine_settings, checkout_id)
    failed = [e for e in events if isinstance(e, m.CheckoutFailed)]
    assert len(failed) == 1 and failed[0].step == m.Step.AUTHORIZE_PAYMENT
    assert any(isinstance(e, m.InventoryReleased) for e in events)
    assert world.released[checkout_id] == 1
    assert world.captured[checkout_id] == 0


def test_a_failed_saga_logs_one_warning_and_counts_its_outcome(
    engine_settings: Settings,
    world_and_adapters: ScriptedWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    processor = build_processor(
        "orchestrator", engine_settings, instance_id=uuid.uuid4().hex[:6], metrics=metrics
    )
    with running(processor):
        checkout_id = start_checkout(engine_settings, payment_method=DECLINED_METHOD)
        history(engine_settings, checkout_id)
        labels = {"outcome": "failed", "step": "authorize_payment", "reason": "declined"}

        def counted() -> bool:
            # Reported after the transaction commits, so a reader may see the event first.
            found = metrics.registry.get_sample_value("saga_outcomes_total", labels)
            return found == 1

        deadline = time.monotonic() + 30
        while not counted():
            assert time.monotonic() < deadline, "the failed saga was never counted"
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and getattr(r, "checkout_id", None) == checkout_id
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    line = warnings[0]
    assert line.__dict__["step"] == "authorize_payment"
    assert line.__dict__["reason_code"] == "declined" and line.__dict__["reason"]
    assert line.__dict__["outcome"] == "failed"


def test_out_of_stock_fails_without_any_payment_call(
    engine_settings: Settings, world_and_adapters: ScriptedWorld
) -> None:
    world = world_and_adapters
    with running(orchestrator(engine_settings)):
        checkout_id = start_checkout(engine_settings, sku=OUT_OF_STOCK_SKU)
        events = history(engine_settings, checkout_id)
    failed = [e for e in events if isinstance(e, m.CheckoutFailed)]
    assert len(failed) == 1 and failed[0].step == m.Step.RESERVE_INVENTORY
    assert world.payment_commands[checkout_id] == 0
    assert not any(isinstance(e, m.PaymentAuthorized) for e in events)


def test_orchestrator_killed_mid_saga_finishes_after_restart_without_duplicate_effects(
    engine_settings: Settings, world_and_adapters: ScriptedWorld
) -> None:
    world = world_and_adapters
    world.gate_authorizations = True
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": engine_settings.kafka_bootstrap_servers or "",
        "SAGA_PARTITIONS": str(engine_settings.partitions),
    }
    argv = [sys.executable, "-m", "infra.cli", "worker", "--role", "orchestrator"]

    first = subprocess.Popen(argv, env=env)
    try:
        checkout_id = start_checkout(engine_settings)
        assert world.authorization_requested.wait(60), "saga never reached authorization"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    world.authorization_gate.set()  # the provider answers while the orchestrator is down

    second = subprocess.Popen(argv, env=env)
    try:
        events = history(engine_settings, checkout_id, timeout_s=90)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert sum(isinstance(e, m.CheckoutCompleted) for e in events) == 1
    assert world.captured[checkout_id] == 3800  # captured once, for the full total
    # The saga decided each (step, attempt) once, across the crash: no command was re-issued
    # under a new idempotency key, so no provider could have applied it twice.
    started = [(e.step, e.attempt) for e in events if isinstance(e, m.StepStarted)]
    assert len(set(started)) == len(started)
    assert (m.Step.CAPTURE_PAYMENT, 1) in started
