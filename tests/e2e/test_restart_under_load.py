"""Every worker kind restarted (SIGTERM, then SIGKILL) while checkouts compete for a SKU with
little stock, on the embedded stack with the real adapters. Judged afterwards from the sources of
truth, PostgreSQL's stock tables and `checkout.events`: on-hand was never reset, what the stock
tables hold is what the sagas hold, nothing was oversold, and every checkout ended."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS
from infra.cli import app
from infra.demo import tokenize
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.fleet import ROLES, fleet
from tests.integration.kafka_helpers import Seen, produce, read_topic

pytestmark = pytest.mark.integration

SERDE = make_serde(None)
INITIAL = 10  # units of the contested SKU
PER_RESTART = 2  # checkouts started before each restart
DECLINED_CARD = "4000000000000341"  # reserves, then fails at authorization: a release
TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled)


def start_checkout(settings: Settings, sku: str, payment_method: str) -> str:
    checkout_id = f"co-rst-{uuid.uuid4().hex[:10]}"
    command = m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-1",
        customer_id="cus-1",
        customer_email="buyer@example.com",
        currency="USD",
        items=(m.LineItem(sku, 1, 1500),),
        shipping_address=m.Address("1 Market St", "San Francisco", "CA", "94105", "US"),
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


def histories(settings: Settings, ids: set[str], timeout_s: float) -> dict[str, list[Any]]:
    """Each checkout's events (deduplicated by message id), read until every one is terminal."""
    assert settings.kafka_bootstrap_servers
    keys = {i.encode(): i for i in ids}
    found: dict[str, dict[str, Any]] = {i: {} for i in ids}
    done: set[str] = set()
    decoded = 0

    def all_terminal(records: list[Seen]) -> bool:
        nonlocal decoded
        for r in records[decoded:]:
            if r.key in keys:
                envelope = SERDE.decode(r.value, CHECKOUT_EVENTS)
                checkout_id = keys[r.key]
                found[checkout_id].setdefault(envelope.message_id, envelope.message)
                if isinstance(envelope.message, TERMINAL):
                    done.add(checkout_id)
        decoded = len(records)
        return done == ids

    try:
        read_topic(
            settings.kafka_bootstrap_servers,
            CHECKOUT_EVENTS,
            until=all_terminal,
            timeout_s=timeout_s,
        )
    except AssertionError as e:
        stuck = {i: [type(x).__name__ for x in found[i].values()] for i in ids - done}
        raise AssertionError(f"{len(stuck)} checkouts never ended: {stuck}") from e
    return {i: list(events.values()) for i, events in found.items()}


def test_restarting_every_worker_kind_under_load_keeps_stock_and_sagas_in_agreement(
    settings: Settings, database_url: str
) -> None:
    sku = f"SKU-RST-{uuid.uuid4().hex[:6]}"
    code = CliRunner().invoke(
        app,
        ["stock", "set", sku, str(INITIAL), "--actor", "restart-test"],
        env={"DATABASE_URL": database_url},
    )
    assert code.exit_code == 0, code.output
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    declined = tokenize(settings, DECLINED_CARD)

    ids: list[str] = []

    def burst() -> None:
        for _ in range(PER_RESTART):
            # Every fifth checkout's card is declined after its units were reserved.
            card = declined if len(ids) % 5 == 4 else "pm_card_visa"
            ids.append(start_checkout(settings, sku, card))

    started = time.monotonic()
    with fleet(settings, database_url) as workers:
        for role in ROLES:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                burst()
                workers.restart(role, sig)
        burst()
        events = histories(settings, set(ids), timeout_s=150)
        assert workers.crashed() == {}
        assert workers.starts == len(ROLES) * 3
    elapsed = time.monotonic() - started
    print(f"{len(ids)} checkouts, {workers.starts} worker starts, {elapsed:.0f}s")

    # What each saga holds, from the event log: its inventory facts in order, the last wins
    # (a release after a commit puts sold units back on the shelf).
    facts = {
        m.InventoryReserved: "reserved",
        m.InventoryCommitted: "committed",
        m.InventoryReleased: "released",
    }
    saga_view: dict[str, tuple[str, str]] = {}
    for checkout_id, ev in events.items():
        held = [(e.reservation_id, facts[type(e)]) for e in ev if type(e) in facts]
        assert len({r for r, _ in held}) <= 1, f"{checkout_id} holds two reservations: {held}"
        if held:
            saga_view[checkout_id] = held[-1]
    completed = {
        i for i, ev in events.items() if any(isinstance(e, m.CheckoutCompleted) for e in ev)
    }

    # What PostgreSQL holds.
    with psycopg.connect(database_url) as conn:
        on_hand, reserved_units = conn.execute(
            "SELECT on_hand, reserved FROM stock WHERE sku = %s", (sku,)
        ).fetchone() or (None, None)
        rows = conn.execute(
            "SELECT r.checkout_id, r.id, r.status, l.quantity FROM reservations r"
            " JOIN reservation_lines l ON l.reservation_id = r.id WHERE l.sku = %s",
            (sku,),
        ).fetchall()
        audit = conn.execute(
            "SELECT actor, on_hand_after FROM stock_audit WHERE sku = %s", (sku,)
        ).fetchall()
    given_back = {"released": "released", "expired": "released"}
    db_view = {c: (r, given_back.get(status, status)) for c, r, status, _ in rows}
    units = Counter[str]()
    for _, _, status, quantity in rows:
        units[status] += quantity

    outcomes = Counter(
        f"{e.step}: {e.reason}" if isinstance(e, m.CheckoutFailed) else type(e).__name__
        for ev in events.values()
        for e in ev
        if isinstance(e, TERMINAL)
    )
    print(f"outcomes: {dict(outcomes)}; stock {on_hand} on hand, {reserved_units} reserved")
    assert audit == [("restart-test", INITIAL)], "something other than the operator set stock"
    assert on_hand == INITIAL - units["committed"], "on-hand was reset or moved without a sale"
    assert units["committed"] <= INITIAL, "oversold"
    assert db_view == saga_view, "the stock tables and the sagas disagree"
    assert reserved_units == units["reserved"] == 0, "units still held after every saga ended"
    holding = Counter(state for _, state in saga_view.values())
    assert units["committed"] == holding["committed"]
    assert {c for c, (_, state) in saga_view.items() if state == "committed"} == completed
    # The run exercised what it claims to: sales, releases, and the stock running out.
    rejected = [
        i
        for i, ev in events.items()
        if any(isinstance(e, m.InventoryReservationRejected) for e in ev)
    ]
    assert completed and holding["released"] and rejected, outcomes
