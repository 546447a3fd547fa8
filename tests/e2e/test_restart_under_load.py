"""Every worker kind restarted (SIGTERM, then SIGKILL) while checkouts compete for a SKU with
little stock, on the embedded stack with the real adapters. Judged afterwards from the sources of
truth, PostgreSQL's stock tables and `checkout.events`: on-hand was never reset, what the stock
tables hold is what the sagas hold, nothing was oversold, and every checkout ended."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS
from infra.cli import app
from infra.demo import tokenize
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.integration.kafka_helpers import Seen, produce, read_topic

pytestmark = pytest.mark.integration

SERDE = make_serde(None)
# Every kind of worker `saga worker` runs on the money path. The notification adapter is not
# among them: nothing wires it by default (infra/adapters_wiring.py).
ROLES = ("orchestrator", "inventory", "tax", "shipping", "payment", "notifier", "fulfilment")
INITIAL = 10  # units of the contested SKU
PER_RESTART = 2  # checkouts started before each restart
DECLINED_CARD = "4000000000000341"  # reserves, then fails at authorization: a release
TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled)
GROUPS = {
    role: role if role in ("orchestrator", "notifier", "fulfilment") else f"adapter-{role}"
    for role in ROLES
}  # each role's consumer group (infra/bootstrap.py names them)


@dataclass
class Fleet:
    """One subprocess per role, as `saga worker --role R` runs in production."""

    env: dict[str, str]
    logdir: Path
    admin: AdminClient
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: int = 0

    def start(self, role: str) -> None:
        self.starts += 1
        log = (self.logdir / f"{role}-{self.starts}.log").open("wb")
        argv = [sys.executable, "-m", "infra.cli", "worker", "--role", role, "--instance", "0"]
        self.procs[role] = subprocess.Popen(argv, env=self.env, stderr=log, stdout=log)
        log.close()

    def restart(self, role: str, sig: signal.Signals) -> None:
        """Stop `role` with `sig` and start its successor; returns once the successor owns the
        role's partitions, so the next restart hits a worker that is serving."""
        proc = self.procs[role]
        assert proc.poll() is None, f"{role} died on its own: {self.log_tail(role)}"
        before = {member for member, _ in self.members(role)[1]}
        proc.send_signal(sig)
        proc.wait(30)  # SIGTERM: the runtime finishes its batch and leaves the group
        self.start(role)
        self.wait_serving(role, not_members=before)

    def members(self, role: str) -> tuple[ConsumerGroupState, list[tuple[str, int]]]:
        group = GROUPS[role]
        described = self.admin.describe_consumer_groups([group], request_timeout=10)[group]
        try:
            desc = described.result()
        except KafkaException:  # e.g. NOT_COORDINATOR while the coordinator moves: ask again
            return ConsumerGroupState.UNKNOWN, []
        members = [(x.member_id, len(x.assignment.topic_partitions)) for x in desc.members]
        return desc.state, members

    def wait_serving(self, role: str, not_members: set[str], deadline_s: float = 60) -> None:
        """Until one new member holds every partition of the role's group. After a SIGKILL
        that waits out the dead member's session timeout, as a real deployment would."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            state, members = self.members(role)
            if (
                state == ConsumerGroupState.STABLE
                and len(members) == 1
                and members[0][0] not in not_members
                and members[0][1] > 0
            ):
                return
            assert self.procs[role].poll() is None, f"{role} exited: {self.log_tail(role)}"
            time.sleep(0.1)  # polling the group coordinator, not waiting for time to pass
        raise AssertionError(f"{role} not serving within {deadline_s}s: {self.members(role)}")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def log_tail(self, role: str) -> str:
        logs = sorted(self.logdir.glob(f"{role}-*.log"), key=lambda p: p.stat().st_mtime)
        return logs[-1].read_text(errors="replace")[-2000:] if logs else ""

    def crashed(self) -> dict[str, str]:
        return {r: self.log_tail(r) for r, p in self.procs.items() if p.poll() is not None}


@contextlib.contextmanager
def fleet(settings: Settings, database_url: str) -> Iterator[Fleet]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "KAFKA_ISOLATION_LEVEL": settings.kafka_isolation_level,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.redis_url or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "STRIPE_API_KEY": settings.stripe_api_key,
        "SMTP_URL": settings.smtp_url or "",
        "SAGA_PARTITIONS": str(settings.partitions),
        "LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory(prefix="restart-workers-") as logdir:
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers or ""})
        workers = Fleet(env, Path(logdir), admin)
        try:
            for role in ROLES:
                workers.start(role)
            for role in ROLES:
                workers.wait_serving(role, not_members=set())
            yield workers
        finally:
            workers.stop()


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
