"""An orchestrator of today taking over sagas a version-1 orchestrator left half done, on the
real broker: it rebuilds them from version-1 history (bare replies, no verdicts) through the
upcaster, finishes them, and the mixed log rebuilds exactly the state it holds."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import pytest

from events import messages as m
from events.envelope import SCHEMA_VERSION, Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_EVENTS, topic_for
from infra.bootstrap import build_processor
from infra.embedded.stack import RunningStack
from infra.partitioner import partition_for
from infra.settings import Settings
from infra.topics import ensure_topics
from infra.workers.orchestrator import OrchestratorHandler
from saga.checkout import decide
from saga.state import SagaState, Status
from saga.upcast import replay_all
from tests.integration.kafka_helpers import Seen, produce, read_topic
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
VERDICTS = (m.StepSucceeded, m.StepAttemptFailed)


def _start(checkout_id: str) -> m.StartCheckout:
    return m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-1",
        customer_id="cus-1",
        customer_email="buyer@example.com",
        currency="EUR",
        items=(m.LineItem("SKU-1", 2, 1250), m.LineItem("SKU-2", 1, 500)),
        shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        payment_provider="stripe",
        payment_method="pm_card_visa",
    )


def _version_1_run_until_authorization(
    world: ScriptedWorld, checkout_id: str, now: int
) -> tuple[list[Any], m.AuthorizePayment]:
    """What a version-1 orchestrator had written when it stopped: the saga up to the
    authorization request, its events as version 1 recorded them (the replies bare: version 1
    judged them in evolve), and the AuthorizePayment it sent in the same transaction."""
    services = world.services()
    adapter = {"ReserveInventory": "inventory", "CalculateTax": "tax", "QuoteShipping": "shipping"}
    state: SagaState | None = None
    recorded: list[Any] = []
    inbox: list[Any] = [_start(checkout_id)]
    while inbox:
        decision = decide(state, inbox.pop(0), now)
        state = decision.state or state
        recorded.extend(e for e in decision.events if not isinstance(e, VERDICTS))
        for command in decision.commands:
            if isinstance(command, m.AuthorizePayment):
                return recorded, command
            inbox.append(services[adapter[type(command).__name__]](command))
    raise AssertionError("the saga never asked for an authorization")


def _events_of(settings: Settings, checkout_id: str, done: type) -> list[Envelope[Any]]:
    assert settings.kafka_bootstrap_servers

    def mine(records: list[Seen]) -> list[Envelope[Any]]:
        unique: dict[str, Envelope[Any]] = {}
        for r in records:
            if r.key == checkout_id.encode():
                envelope = SERDE.decode(r.value, CHECKOUT_EVENTS)
                unique.setdefault(envelope.message_id, envelope)
        return list(unique.values())

    seen = read_topic(
        settings.kafka_bootstrap_servers,
        CHECKOUT_EVENTS,
        timeout_s=90,
        until=lambda records: any(isinstance(e.message, done) for e in mine(records)),
    )
    return mine(seen)


def test_a_saga_begun_under_version_1_finishes_and_its_mixed_log_rebuilds_the_live_state(
    stack: RunningStack,
) -> None:
    settings = stack.settings
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    ensure_topics(bootstrap, settings.partitions)
    world = ScriptedWorld()
    checkout_id = f"v1-{uuid.uuid4().hex[:10]}"
    now = int(time.time() * 1000)
    old_events, authorize = _version_1_run_until_authorization(world, checkout_id, now)
    assert any(isinstance(e, m.InventoryReserved) for e in old_events)

    def v1(message: Any) -> Envelope[Any]:
        envelope = Envelope.new(message, occurred_at=now, producer="orchestrator@v1")
        return dataclasses.replace(envelope, schema_version=1)

    produce(bootstrap, CHECKOUT_EVENTS, SERDE, [v1(e) for e in old_events])
    produce(bootstrap, topic_for(authorize), SERDE, [v1(authorize)])

    adapters = [
        build_processor(role, settings, services=world.services(), instance_id=uuid.uuid4().hex[:6])
        for role in ("inventory", "tax", "shipping", "payment")
    ]
    orchestrator = build_processor("orchestrator", settings, instance_id=uuid.uuid4().hex[:6])
    with running(*adapters, orchestrator):
        log = _events_of(settings, checkout_id, m.CheckoutCompleted)
    # Completed, so the orchestrator evicted it once its final snapshot (its in-memory state,
    # encoded in the commit that completed it) was written (ADR 0014): read that back.
    after = OrchestratorHandler(bootstrap, SERDE)
    after.rebuild_now(range(settings.partitions))
    assert after.refolded == []  # from the snapshots, not from the log
    live = after.lookup(checkout_id, partition_for(checkout_id.encode(), settings.partitions))

    assert world.captured[checkout_id] == 3800  # authorized and captured once, in full
    versions = [e.schema_version for e in log]
    assert versions[: len(old_events)] == [1] * len(old_events)
    assert set(versions[len(old_events) :]) == {SCHEMA_VERSION}
    # Today's orchestrator recorded its verdicts; the version-1 part has none.
    assert any(isinstance(e.message, VERDICTS) for e in log[len(old_events) :])
    rebuilt = replay_all((e.message, e.schema_version) for e in log)
    assert rebuilt is not None and rebuilt.status is Status.COMPLETED
    assert rebuilt == live
