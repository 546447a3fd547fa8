"""`saga worker --role adapters` on the real broker: one worker serves the four adapters the saga
calls, and moving between it and one worker per adapter asks no provider a request that the
other set already answered (infra/handover.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS, SAGA_ADAPTERS
from infra.bootstrap import ADAPTERS_ROLE, build_processor
from infra.processor import Processor
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.integration.kafka_helpers import Seen, produce, read_topic
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
TIMEOUT_S = 90


@pytest.fixture(scope="module")
def settings(stack: Any) -> Iterator[Settings]:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    yield settings


def adapters(settings: Settings, world: ScriptedWorld, roles: tuple[str, ...]) -> list[Processor]:
    instance = uuid.uuid4().hex[:6]
    return [
        build_processor(role, settings, services=world.services(), instance_id=instance)
        for role in (*roles, "notification")
    ]


def start(checkout_id: str) -> m.StartCheckout:
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


def checkout(settings: Settings) -> tuple[str, m.CheckoutCompleted]:
    """Starts one checkout and waits for it to complete."""
    checkout_id = f"co-adapters-{uuid.uuid4().hex[:10]}"
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    envelope = Envelope.new(start(checkout_id), occurred_at=int(time.time() * 1000), producer="t")
    produce(bootstrap, CHECKOUT_COMMANDS, SERDE, [envelope])
    done: list[m.CheckoutCompleted] = []

    def completed(records: list[Seen]) -> bool:
        for r in records:
            if r.key == checkout_id.encode():
                message = SERDE.decode(r.value, CHECKOUT_EVENTS).message
                if isinstance(message, m.CheckoutCompleted):
                    done.append(message)
        return bool(done)

    read_topic(bootstrap, CHECKOUT_EVENTS, timeout_s=TIMEOUT_S, until=completed)
    return checkout_id, done[0]


def asked(world: ScriptedWorld) -> set[str]:
    """The checkouts whose requests reached this world's providers."""
    by_key = {k.split(":")[0] for k in world.effects}
    return by_key | set(world.payment_commands) | set(world.quotes)


def test_one_worker_serves_every_adapter_and_the_sets_hand_over_without_asking_again(
    settings: Settings,
) -> None:
    orchestrator = build_processor("orchestrator", settings, instance_id=uuid.uuid4().hex[:6])
    with running(orchestrator):
        split, combined, split_again = ScriptedWorld(), ScriptedWorld(), ScriptedWorld()
        with running(*adapters(settings, split, SAGA_ADAPTERS)):
            first, _ = checkout(settings)
        with running(*adapters(settings, combined, (ADAPTERS_ROLE,))):
            second, done = checkout(settings)
        with running(*adapters(settings, split_again, SAGA_ADAPTERS)):
            third, _ = checkout(settings)

    # The combined worker answered every step of its checkout: stock, tax, shipping, payment.
    assert (done.subtotal, done.tax, done.shipping) == (3000, 300, 500)
    assert combined.captured[second] == done.total
    assert combined.payment_commands[second] == 2  # authorize, capture: each asked once
    assert combined.quotes[second] == 2  # tax and shipping
    # Each set started where the other stopped: none asked a request the other had answered
    # (from its own group's start, each would have asked this whole test session's requests).
    assert first in asked(split)
    assert second not in asked(split) and third not in asked(split)
    assert asked(combined) == {second}, sorted(asked(combined))[:5]
    assert asked(split_again) == {third}, sorted(asked(split_again))[:5]
