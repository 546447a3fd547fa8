"""Chaos run (issue 14): many checkouts on the real embedded stack while Stripe fails, workers
are SIGKILLed and webhooks arrive twice, late and out of order; judged afterwards from the
sources of truth: localstripe's PaymentIntents, events and refunds (read directly, not through
the proxy), PostgreSQL's stock tables (sampled throughout) and `checkout.events`.

Real parts: Apache Kafka, PostgreSQL, Redis, localstripe; orchestrator, inventory, tax,
shipping and payment as `saga worker --role R` subprocesses (tests/fleet.py) on a database of
their own, the payment worker talking to localstripe through tests/fault_proxy.py; the HTTP API
in-process (FastAPI TestClient on the same database and broker) for the checkouts started over
HTTP and for every webhook. Stock is set and raised with the real `saga stock set`.

Profile: SAGA_CHAOS_PROFILE=quick (default, in `make test`) or long; see docs/chaos.md. The
report is printed (`pytest -s`) and written to the test's tmp dir and to SAGA_CHAOS_REPORT.

Besides Stripe's faults and worker SIGKILLs: TaxJar and EasyPost (local peers speaking their
HTTP contracts) failing and hanging in windows, checkouts to an address no tax authority knows,
PostgreSQL connections terminated mid-transaction and a PostgreSQL restart on the run's own
server. A broker SIGKILL is in the long profile only while it stalls the engine (docs/chaos.md,
finding 4)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.keys import create_api_key
from events import messages as m
from events.envelope import Envelope
from events.messages import Step
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_REPLIES, adapter_requests, dlq
from infra.api_wiring import build_api_deps
from infra.cli import app
from infra.demo import tokenize
from infra.embedded.localstripe import LocalStripe
from infra.embedded.stack import RunningStack, embedded_stack
from infra.processor import producer_config
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.chaos.harness import SAMPLER_APP, TERMINAL, EventTail, LogTail, StockSampler
from tests.chaos.profile import Profile, parse
from tests.chaos.report import Report, percentile
from tests.conftest import fresh_database
from tests.fault_proxy import OPERATIONS, FaultMix, FaultProxy
from tests.fleet import Fleet, fleet
from tests.integration.shipping.easypost_peer import EasyPostPeer
from tests.integration.shipping.easypost_peer import running_peer as running_easypost
from tests.integration.tax.taxjar_peer import TaxJarPeer
from tests.integration.tax.taxjar_peer import running_peer as running_taxjar

pytestmark = pytest.mark.integration

PROFILE = parse(os.environ)
REDELIVER_FOR_S = 90.0  # how long a storefront or Stripe keeps retrying a 5xx here
SERDE = make_serde(None)
ROLES = ("orchestrator", "inventory", "tax", "shipping", "payment")
OK_CARD, DECLINED_CARD, THREE_DS_CARD = "4242424242424242", "4000000000000341", "4000002500003155"
# What each kind of checkout does, and its share of the run.
KINDS = {
    "ok": 0.40,  # ok card, plenty of stock: must complete
    "refund": 0.08,  # as ok, then the admin refunds part of it (and asks for too much)
    "api": 0.06,  # as ok, started over POST /v1/checkouts
    "contested": 0.18,  # ok card, one unit of the SKU with few units: completes or sold out
    "declined": 0.08,  # declined at authorization: fails, its units released
    "cancel": 0.08,  # the customer cancels once authorization has started
    "tds_finish": 0.05,  # 3-D Secure, authenticated, webhook delivered twice: must complete
    "tds_abandon": 0.035,  # 3-D Secure, never authenticated, the customer cancels
    "tds_late": 0.035,  # authenticated, cancelled, then the success webhook arrives: stays so
    "invalid": 0.03,  # a shipping address no tax authority knows: fails at tax, nothing charged
}
MUST_COMPLETE = {"ok", "refund", "api", "tds_finish"}
MUST_NOT_COMPLETE = {"declined", "tds_abandon", "tds_late", "invalid"}


@dataclass
class Checkout:
    index: int
    kind: str
    due_s: float  # when it is started, from the run's start
    sku: str
    checkout_id: str = ""
    sent_at: float = 0.0
    phase: str = ""
    done: set[str] = field(default_factory=set)  # reactions already made
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (input kind, its id)
    late_hook: bytes | None = None  # tds_late: the success webhook held back until cancelled
    reacted_to: int = -1  # how many of its events `react` last saw (it depends on nothing else)


def plan(profile: Profile, run: str, skus: list[str], contested: str) -> list[Checkout]:
    rng = random.Random(profile.seed)
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=profile.checkouts)
    spacing = profile.total_s / profile.checkouts
    out = []
    for i, kind in enumerate(kinds):
        sku = contested if kind == "contested" else rng.choice(skus)
        out.append(Checkout(i, kind, i * spacing, sku))
    return out


SHOP_ADDRESS = m.Address("1 Market St", "San Francisco", "CA", "94105", "US")
NOWHERE = m.Address("1 Market St", "San Francisco", "CA", "ABCDE", "US")  # no such ZIP code


def start_command(
    checkout_id: str,
    sku: str,
    method: str,
    quantity: int,
    unit_amount: int,
    address: m.Address = SHOP_ADDRESS,
) -> m.StartCheckout:
    return m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-chaos",
        customer_id=f"cus-{checkout_id[-6:]}",
        customer_email="buyer@example.com",
        currency="USD",
        items=(m.LineItem(sku, quantity, unit_amount),),
        shipping_address=address,
        payment_provider="stripe",
        payment_method=method,
    )


def signed(payload: bytes, secret: str) -> str:
    t = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    return f"t={t},v1={signature}"


def webhook(kind: str, intent: dict[str, Any]) -> tuple[str, bytes]:
    event_id = f"evt_{uuid.uuid4().hex}"
    event = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": intent},
    }
    return event_id, json.dumps(event).encode()


def read_to_end(bootstrap: str, topic: str, keys: set[bytes]) -> list[tuple[bytes, str]]:
    """(key, dlq.error) of every record of `topic` keyed by one of `keys`, read up to the high
    watermarks as they are now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-dlq-{uuid.uuid4()}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        ends = {}
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > 0:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        found, deadline = [], time.monotonic() + 30
        positions = dict.fromkeys(ends, 0)
        while any(positions[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"{topic}: not read to its end in 30 s"
            for record in consumer.consume(500, 0.2):
                if record.error():
                    continue
                positions[record.partition()] = (record.offset() or 0) + 1
                if record.key() in keys:
                    headers = dict(record.headers() or [])
                    reason = (headers.get("dlq.error") or b"").decode(errors="replace")
                    found.append((record.key() or b"", reason))
        return found
    finally:
        consumer.close()


class Conductor:
    """The faults, on a timeline drawn from the profile's seed, on a thread of its own."""

    def __init__(
        self,
        profile: Profile,
        proxy: FaultProxy,
        workers: Fleet,
        t0: float,
        own: OwnServices,
        vendors: Vendors,
    ) -> None:
        self.profile, self.proxy, self.workers, self.t0 = profile, proxy, workers, t0
        self.own, self.vendors = own, vendors
        rng = random.Random(profile.seed + 1)
        start, length = profile.before_s, profile.during_s
        self.outage_at = start + length * 0.45

        def moments(n: int) -> list[float]:
            return sorted(rng.uniform(start + 2, start + length - 4) for _ in range(n))

        roles = ("orchestrator", "payment")
        self.kills_planned = [(t, roles[i % 2]) for i, t in enumerate(moments(profile.kills))]
        self.kills: list[tuple[float, str, float]] = []  # (at, role, seconds until serving)
        # Away from the outage and from each other, so each fault's effect can be read alone.
        self.infra_planned = [
            *((t, "pg_kill") for t in moments(profile.pg_kills)),
            *((start + length * (0.2 + 0.5 * i / max(1, profile.pg_restarts)), "pg_restart")
              for i in range(profile.pg_restarts)),
            *((start + length * (0.3 + 0.5 * i / max(1, profile.broker_kills)), "broker_kill")
              for i in range(profile.broker_kills)),
        ]  # fmt: skip
        # TaxJar and the carrier misbehave in windows: (start offset, peer, outcome, seconds).
        self.vendor_planned: list[tuple[float, str, int | str, float]] = [
            (start + length * 0.05, "taxjar", 500, 4.0),
            (start + length * 0.15, "taxjar", "garbage", 4.0),
            (start + length * 0.25, "taxjar", 429, 4.0),
            (start + length * 0.55, "easypost", "hang", 12.0),  # every carrier times out
            (start + length * 0.65, "taxjar", "hang", 6.0),
            (start + length * 0.80, "taxjar", 503, 4.0),
        ]
        self.vendor_windows: list[tuple[str, str, float, int]] = []  # (peer, outcome, at, hits)
        self.pg_kills: list[tuple[float, int]] = []  # (at, connections terminated)
        self.down: list[tuple[str, float, float]] = []  # (service, from, until): offsets
        self.errors: list[BaseException] = []
        self.faults_on_at = self.faults_off_at = 0.0
        self._thread = threading.Thread(target=self._run, name="chaos-conductor", daemon=True)
        self._stop = threading.Event()
        self.timeline_done = threading.Event()

    def _at(self, offset: float) -> bool:
        """Wait until `offset` into the run; False if stopped first. A timeline, not a poll."""
        return not self._stop.wait(max(0.0, self.t0 + offset - time.monotonic()))

    def _run(self) -> None:
        try:
            p = self.profile
            rate = p.fault_rate
            mix = FaultMix(e500=rate * 0.3, e429=rate * 0.3, slow=rate * 0.25, timeout=rate * 0.15)
            events: list[tuple[float, str, str]] = [
                (p.before_s, "faults_on", ""),
                (self.outage_at, "outage", ""),
                (p.before_s + p.during_s, "faults_off", ""),
                *((t, "kill", role) for t, role in self.kills_planned),
                *((t, what, "") for t, what in self.infra_planned),
                *((t, "vendor", str(i)) for i, (t, _, _, _) in enumerate(self.vendor_planned)),
            ]
            for offset, what, role in sorted(events):
                if not self._at(offset):
                    return
                now = time.monotonic() - self.t0
                if what == "faults_on":
                    self.proxy.random_faults(p.seed, dict.fromkeys(OPERATIONS, mix))
                    self.faults_on_at = now
                elif what == "outage":
                    self.proxy.outage(p.outage_s / 2, p.outage_s / 2)
                elif what == "faults_off":
                    self.proxy.stop_random_faults()
                    self.faults_off_at = now
                elif what == "vendor":
                    _, name, outcome, seconds = self.vendor_planned[int(role)]
                    self.vendor_windows.append(
                        (name, str(outcome), now, self.vendors.misbehave(name, outcome, seconds))
                    )
                elif what == "pg_kill":
                    self.pg_kills.append((now, self.own.terminate_connections()))
                elif what == "pg_restart":
                    self.down.append(("postgres", now, self.own.restart("postgres") + now))
                elif what == "broker_kill":
                    self.down.append(("kafka", now, self.own.restart("kafka", kill=True) + now))
                else:
                    began = time.monotonic()
                    self.workers.restart(role, signal.SIGKILL)
                    self.kills.append((now, role, time.monotonic() - began))
        except BaseException as e:  # surfaced by the test, never lost with the thread
            self.errors.append(e)
        finally:
            self.timeline_done.set()
        # Stay alive: a restarted broker or PostgreSQL was started by this thread, and the
        # kernel stops a service whose parent thread ends (PR_SET_PDEATHSIG, infra/embedded).
        self._stop.wait()

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        """Until every fault of the timeline has been injected."""
        self.timeline_done.wait(120)

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass
class Run:
    """What the driver needs at hand: the stack's pieces and the checkouts' bookkeeping."""

    settings: Settings
    database_url: str
    tail: EventTail
    api: TestClient
    api_key: str
    stripe_direct: stripe.StripeClient
    cards: dict[str, str]
    t0: float = 0.0
    webhooks_sent: Counter[str] = field(default_factory=Counter)
    webhook_failures: list[str] = field(default_factory=list)
    webhooks_redelivered: Counter[int] = field(default_factory=Counter)  # by status answered
    starts_retried: Counter[int] = field(default_factory=Counter)
    commands_resent: int = 0
    _producer: Producer | None = None
    _capturable_sent: set[str] = field(default_factory=set)  # PaymentIntents webhooked
    _capturable_at: float = 0.0
    _capturable_every: float = 2.0  # grows with the listing's cost (a long run's big account)
    _holds_left: bool = False

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap_servers
        return self.settings.kafka_bootstrap_servers

    def command(self, message: Any) -> None:
        """Straight onto checkout.commands, as a storefront's own producer does: a producer
        that failed (a broker that lost its idempotence state in a SIGKILL fences it) is
        replaced and the same envelope sent again (the saga drops the duplicate)."""
        envelope = Envelope.new(message, occurred_at=int(time.time() * 1000), producer="chaos")
        value = SERDE.encode(envelope, CHECKOUT_COMMANDS)
        deadline = time.monotonic() + REDELIVER_FOR_S
        while True:
            failed: list[Any] = []
            try:
                if self._producer is None:
                    self._producer = Producer(producer_config(self.bootstrap))
                self._producer.produce(
                    CHECKOUT_COMMANDS,
                    key=envelope.key.encode(),
                    value=value,
                    on_delivery=lambda err, _msg, failed=failed: (
                        failed.append(err) if err else None
                    ),
                )
                if self._producer.flush(30) == 0 and not failed:
                    return
            except KafkaException as e:
                failed.append(e)
            assert time.monotonic() < deadline, f"could not send {envelope}: {failed}"
            self.commands_resent += 1
            self._producer = None
            time.sleep(0.5)

    def hook(self, payload: bytes, kind: str) -> None:
        """POST a signed Stripe webhook to our API; a 5xx is redelivered, as Stripe does."""
        deadline = time.monotonic() + REDELIVER_FOR_S
        while True:
            # Signed at each delivery, as Stripe does (the signature's timestamp is checked).
            header = signed(payload, self.settings.stripe_webhook_secrets[0])
            r = self.api.post(
                "/v1/webhooks/stripe", content=payload, headers={"Stripe-Signature": header}
            )
            if r.status_code == 200:
                self.webhooks_sent[kind] += 1
                return
            if r.status_code < 500 or time.monotonic() > deadline:
                self.webhook_failures.append(f"{kind}: {r.status_code} {r.text[:200]}")
                return
            self.webhooks_redelivered[r.status_code] += 1
            time.sleep(0.5)  # Stripe's redelivery backoff, much shortened

    def stripe_announces_holds(self, checkouts: dict[str, Checkout]) -> bool:
        """What Stripe itself does: a PaymentIntent that became capturable is announced with
        `payment_intent.amount_capturable_updated`, whatever happened to the API call that made
        it (a create whose answer was lost to a timeout or a dropped connection still created
        it). Sent here for the holds of checkouts that ended without paying, which only the
        webhook can tell the saga about. Returns whether such a hold is still there (checked
        every 2 s: it lists the account)."""
        now = time.monotonic()
        if now - self._capturable_at < self._capturable_every:
            return self._holds_left
        holds = False
        for pi in self.stripe_direct.v1.payment_intents.list(
            params={"limit": 100}
        ).auto_paging_iter():
            data = pi.to_dict()
            c = checkouts.get((data.get("metadata") or {}).get("checkout_id") or "")
            if c is None or data["status"] != "requires_capture":
                continue
            terminal = self.tail.terminal(c.checkout_id)
            if terminal is None or isinstance(terminal, m.CheckoutCompleted):
                continue
            holds = True
            if data["id"] not in self._capturable_sent:
                self._capturable_sent.add(data["id"])
                event_id, payload = webhook("payment_intent.amount_capturable_updated", data)
                self.hook(payload, "capturable, checkout ended unpaid")
                c.inputs.append(("signal", event_id))
        self._holds_left = holds
        # Listing 20,000 PaymentIntents takes localstripe seconds: never more than a fifth of
        # its time goes to this.
        self._capturable_at = time.monotonic()
        self._capturable_every = max(2.0, 4 * (self._capturable_at - now))
        return holds

    def intent(self, payment_id: str) -> dict[str, Any]:
        return dict(self.stripe_direct.v1.payment_intents.retrieve(payment_id).to_dict())

    def authenticate(self, action: m.PaymentActionRequired) -> None:
        """Stripe.js handleNextAction in the customer's browser: straight to the emulator."""
        r = httpx.post(
            f"{self.settings.stripe_api_base}/v1/payment_intents/{action.payment_id}/_authenticate",
            data={"key": "pk_test_chaos", "client_secret": action.client_secret, "success": "true"},
            timeout=10,
        )
        assert r.status_code == 200, r.text


def submit(run: Run, c: Checkout, run_id: str) -> None:
    card = {"declined": "declined"}.get(c.kind, "3ds" if c.kind.startswith("tds") else "ok")
    method = run.cards[card]
    quantity = 1 if c.kind == "contested" else 1 + c.index % 2
    # A price of its own: the tax worker caches quotes by basket and address, and identical
    # baskets would leave TaxJar's fault windows with no request to fail.
    price = 1500 + c.index
    if c.kind == "api":
        body = {
            "customer": {"id": f"cus-api-{c.index}", "email": "buyer@example.com"},
            "currency": "USD",
            "items": [{"sku": c.sku, "quantity": quantity, "unit_amount": price}],
            "shipping_address": {
                "line1": "1 Market St",
                "city": "San Francisco",
                "state": "CA",
                "postal_code": "94105",
                "country": "US",
            },
            "payment": {"provider": "stripe", "payment_method": method},
        }
        deadline = time.monotonic() + REDELIVER_FOR_S
        while True:  # a storefront retries a 5xx with the same Idempotency-Key
            r = run.api.post(
                "/v1/checkouts",
                json=body,
                headers={
                    "Authorization": f"Bearer {run.api_key}",
                    "Idempotency-Key": f"{run_id}-{c.index}",
                },
            )
            if r.status_code < 500 or time.monotonic() > deadline:
                break
            run.starts_retried[r.status_code] += 1
            time.sleep(0.5)
        assert r.status_code == 202, r.text
        c.checkout_id = str(r.json()["checkout_id"])
    else:
        c.checkout_id = f"co-chaos-{run_id}-{c.index:05d}"
        address = NOWHERE if c.kind == "invalid" else SHOP_ADDRESS
        run.command(start_command(c.checkout_id, c.sku, method, quantity, price, address))
    c.inputs.append(("start", c.checkout_id))
    c.sent_at = time.monotonic()


def react(run: Run, c: Checkout) -> None:
    """What the customer or the admin does next, given what the saga has said so far: only
    when it has said more since the last look (10,000 checkouts are looked at every 50 ms)."""
    if not c.checkout_id or run.tail.count(c.checkout_id) == c.reacted_to:
        return
    events = run.tail.of(c.checkout_id)
    c.reacted_to = len(events)
    terminal = next((e for e in events if isinstance(e, TERMINAL)), None)
    action = next((e for e in events if isinstance(e, m.PaymentActionRequired)), None)
    if c.kind == "cancel" and "cancel" not in c.done and terminal is None:
        started = any(
            isinstance(e, m.StepStarted) and e.step is Step.AUTHORIZE_PAYMENT for e in events
        )
        if started:  # payment is in flight: the customer changes their mind
            c.done.add("cancel")
            run.command(m.CancelCheckout(c.checkout_id, "customer changed their mind"))
            c.inputs.append(("cancel", c.checkout_id))
    if c.kind.startswith("tds") and action is not None and "action" not in c.done:
        c.done.add("action")
        if c.kind == "tds_abandon":
            run.command(m.CancelCheckout(c.checkout_id, "customer left the 3-D Secure page"))
            c.inputs.append(("cancel", c.checkout_id))
        else:
            run.authenticate(action)
            event_id, payload = webhook(
                "payment_intent.amount_capturable_updated", run.intent(action.payment_id)
            )
            if c.kind == "tds_finish":
                run.hook(payload, "authorized")
                run.hook(payload, "authorized duplicate")  # Stripe's redelivery: same id
                c.inputs.append(("signal", event_id))
            else:  # tds_late: the customer cancels; Stripe's success webhook comes after
                c.late_hook = payload
                c.inputs.append(("signal", event_id))
                run.command(m.CancelCheckout(c.checkout_id, "customer cancelled after 3DS"))
                c.inputs.append(("cancel", c.checkout_id))
    if c.kind == "tds_late" and c.late_hook and isinstance(terminal, m.CheckoutCancelled):
        run.hook(c.late_hook, "success after compensation")
        c.late_hook = None
    if isinstance(terminal, m.CheckoutCompleted) and "after_completion" not in c.done:
        c.done.add("after_completion")
        if c.kind == "refund":
            # Part of it, twice under one request id (an admin's retry), then more than is
            # left under another: one refund paid, one rejected by the ledger.
            rid = f"rr-{c.checkout_id}"
            part = terminal.total // 3
            for _ in range(2):
                run.command(m.RequestRefund(c.checkout_id, rid, part, "USD", "damaged"))
            run.command(m.RequestRefund(c.checkout_id, rid + "-2", terminal.total, "USD", "all"))
            c.inputs += [("refund", rid), ("refund", rid + "-2")]
        if c.index % 7 == 0:  # a late `succeeded` webhook of an order already complete
            paid = next(e for e in events if isinstance(e, m.PaymentCaptured))
            event_id, payload = webhook("payment_intent.succeeded", run.intent(paid.payment_id))
            run.hook(payload, "succeeded after completion")
            c.inputs.append(("signal", event_id))


def stock_set(database_url: str, sku: str, units: int) -> None:
    done = CliRunner().invoke(
        app,
        ["stock", "set", sku, str(units), "--actor", "chaos", "--reason", "restock"],
        env={"DATABASE_URL": database_url},
    )
    assert done.exit_code == 0, done.output


def restock(database_url: str, sku: str, more: int) -> None:
    """The operator raises a SKU's stock; PostgreSQL may be restarting just then (the long
    profile restocks at its last restart), and an operator runs the command again."""
    deadline = time.monotonic() + REDELIVER_FOR_S
    while True:
        try:
            stock_set(database_url, sku, on_hand(database_url, sku) + more)
            return
        except (psycopg.OperationalError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)  # the operator's pause before trying again


def on_hand(database_url: str, sku: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT on_hand FROM stock WHERE sku = %s", (sku,)).fetchone()
    assert row is not None
    return int(row[0])


def seed_history(client: stripe.StripeClient, count: int) -> None:
    """The account's past: `count` PaymentIntents of other checkouts, as a live account has."""
    existing = 0
    for _ in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        existing += 1
        if existing >= count:
            return
    for i in range(count - existing):
        client.v1.payment_intents.create(
            params={
                "amount": 1000 + i % 500,
                "currency": "usd",
                "payment_method_types": ["card"],
                "metadata": {"checkout_id": f"history-{i}"},
            }
        )


@contextlib.contextmanager
def api_client(settings: Settings) -> Iterator[tuple[TestClient, str]]:
    deps = build_api_deps(settings)
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        key = create_api_key(conn, "shop-chaos", "chaos")
    # Server errors come back as responses (as over a network), so the driver can retry them.
    with TestClient(create_app(deps), raise_server_exceptions=False) as client:
        yield client, key


@pytest.mark.timeout(PROFILE.total_s + PROFILE.quiesce_s + 240 + PROFILE.history_intents * 0.05)
def test_chaos_profile_keeps_money_stock_and_sagas_right(
    stack: RunningStack, tmp_path: Path
) -> None:
    profile = PROFILE
    run_id = uuid.uuid4().hex[:6]
    with (
        own_stripe(stack.settings, tmp_path, run_id) as with_stripe,
        own_services(with_stripe, tmp_path) as (base, own),
    ):
        run_chaos(profile, base, run_id, tmp_path, own)


@dataclass
class Vendors:
    """TaxJar and EasyPost as local peers speaking their HTTP contracts (tests/integration),
    for the tax and shipping workers; the conductor makes them fail for a while."""

    taxjar: TaxJarPeer
    easypost: EasyPostPeer

    def env(self) -> dict[str, dict[str, str]]:
        ship_from = {
            "SHIP_FROM_LINE1": "9500 Gilman Dr",
            "SHIP_FROM_CITY": "La Jolla",
            "SHIP_FROM_STATE": "CA",
            "SHIP_FROM_POSTAL_CODE": "92093",
            "SHIP_FROM_COUNTRY": "US",
        }
        return {
            "tax": {"TAXJAR_API_KEY": self.taxjar.api_key, "TAXJAR_API_URL": self.taxjar.url},
            "shipping": {
                "EASYPOST_API_KEY": self.easypost.api_key,
                "EASYPOST_API_BASE": self.easypost.url,
                **ship_from,
            },
        }

    def misbehave(self, name: str, outcome: int | str, seconds: float) -> int:
        """Every request gets `outcome` for `seconds` (blocking the conductor, which has nothing
        else due then); returns how many requests met it."""
        peer: TaxJarPeer | EasyPostPeer = getattr(self, name)
        before = peer.request_count
        peer.always = outcome
        time.sleep(seconds)  # the window's length, not a wait for a condition
        peer.always = None
        if outcome == "hang":
            peer.release.set()  # the held requests end (their callers gave up long ago)
            peer.release = threading.Event()
        return peer.request_count - before


@dataclass
class OwnServices:
    """The run's own broker and PostgreSQL (an embedded stack of their own), so stopping them
    disturbs no other test; and the acts of killing and restarting them."""

    running: RunningStack
    database_url: str = ""  # the run's database on this server (for terminating its clients)

    def terminate_connections(self) -> int:
        """pg_terminate_backend on every client of the run's database but the harness's stock
        sampler (an observer, not the engine): transactions in flight
        are rolled back and their connections die, as when a network path or pgbouncer drops."""
        assert self.running.settings.database_url
        dbname = self.database_url.rsplit("/", 1)[-1]
        with psycopg.connect(self.running.settings.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid() AND application_name <> %s",
                (dbname, SAMPLER_APP),
            ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def restart(self, name: str, *, kill: bool = False) -> float:
        """Stop `name` (SIGKILL when `kill`: no shutdown at all) and start it again on its own
        data and port; returns the seconds it was away."""
        service = self.running.services[name]
        began = time.monotonic()
        proc = getattr(service, "_proc", None)
        if kill and proc is not None:
            proc.kill()
            proc.wait(30)
        service.stop()
        service.start()
        return time.monotonic() - began


@contextlib.contextmanager
def own_services(settings: Settings, keep_logs_in: Path) -> Iterator[tuple[Settings, OwnServices]]:
    mine = dataclasses.replace(settings, kafka_bootstrap_servers=None, database_url=None)
    with embedded_stack(mine, only=("kafka", "postgres")) as running:
        try:
            yield (
                dataclasses.replace(
                    settings,
                    kafka_bootstrap_servers=running.settings.kafka_bootstrap_servers,
                    database_url=running.settings.database_url,
                    kafka_isolation_level=running.settings.kafka_isolation_level,
                ),
                OwnServices(running),
            )
        finally:
            # The broker's and PostgreSQL's own logs, next to the report (their directory goes).
            for name in ("kafka/kafka.log", "postgres/postgres.log"):
                with contextlib.suppress(OSError):
                    shutil.copy(running.workdir / name, keep_logs_in / name.replace("/", "-"))


@contextlib.contextmanager
def own_stripe(settings: Settings, tmp_path: Path, run_id: str) -> Iterator[Settings]:
    """A Stripe account of the run's own (a localstripe of its own), so what the PSP holds is
    this run's doing and its history is the profile's choice, not the earlier tests' (an
    authorization's cost grows with the account's PaymentIntents: docs/chaos.md)."""
    workdir = tmp_path / "stripe"
    workdir.mkdir()
    emulator = LocalStripe(workdir, api_key=f"sk_test_chaos{run_id}")
    emulator.start()
    try:
        yield dataclasses.replace(
            settings, stripe_api_base=emulator.url, stripe_api_key=emulator.api_key
        )
    finally:
        emulator.stop()


def run_chaos(
    profile: Profile, base: Settings, run_id: str, tmp_path: Path, own: OwnServices
) -> None:
    assert base.kafka_bootstrap_servers and base.stripe_api_base and base.stripe_api_key
    assert base.database_url
    ensure_topics(base.kafka_bootstrap_servers, base.partitions)
    stripe_direct = stripe.StripeClient(
        base.stripe_api_key, base_addresses={"api": base.stripe_api_base}
    )
    seed_history(stripe_direct, profile.history_intents)
    skus = [f"SKU-CH-{run_id}-{x}" for x in "ABCD"]
    contested = f"SKU-CH-{run_id}-HOT"
    checkouts = plan(profile, run_id, skus, contested)
    cards = {
        "ok": tokenize(base, OK_CARD),
        "declined": tokenize(base, DECLINED_CARD),
        "3ds": tokenize(base, THREE_DS_CARD),
    }

    with (
        fresh_database(base.database_url) as database_url,
        FaultProxy(base.stripe_api_base) as proxy,
        running_taxjar() as taxjar,
        running_easypost() as easypost,
    ):
        vendors = Vendors(taxjar, easypost)
        settings = dataclasses.replace(base, database_url=database_url)
        own.database_url = database_url
        for sku in skus:
            stock_set(database_url, sku, 100_000)
        stock_set(database_url, contested, profile.contested_units)
        sampler = StockSampler(database_url, (*skus, contested))
        tail = EventTail(base.kafka_bootstrap_servers, SERDE, base.kafka_isolation_level)
        tail.start()
        payments_log = LogTail(
            base.kafka_bootstrap_servers,
            SERDE,
            base.kafka_isolation_level,
            (adapter_requests("payment"), CHECKOUT_REPLIES),
        )
        payments_log.start()
        # The payment worker reaches Stripe through the proxy; its breaker probes every 3 s so
        # a blip ends soon after Stripe is back.
        payment_env = {"STRIPE_API_BASE": proxy.url, "PAYMENT_BREAKER_RESET_S": "3"}
        if profile.payment_batch_size is not None:  # docs/chaos.md: why the quick profile sets it
            payment_env["SAGA_BATCH_SIZE"] = str(profile.payment_batch_size)
        with (
            fleet(
                settings, database_url, ROLES, {"payment": payment_env, **vendors.env()}
            ) as workers,
            api_client(settings) as (client, api_key),
        ):
            workers.supervise()  # a worker that exits is started again, as `saga run` does
            run = Run(settings, database_url, tail, client, api_key, stripe_direct, cards)
            run.t0 = t0 = time.monotonic()
            sampler.start()
            conductor = Conductor(profile, proxy, workers, t0, own, vendors)
            conductor.start()
            restock_at = profile.before_s + profile.during_s * 0.6
            restocked = False
            pending = iter(checkouts)
            upcoming = next(pending, None)
            while upcoming is not None or time.monotonic() - t0 < profile.total_s:
                now = time.monotonic() - t0
                while upcoming is not None and upcoming.due_s <= now:
                    upcoming.phase = phase_of(profile, upcoming.due_s)
                    submit(run, upcoming, run_id)
                    upcoming = next(pending, None)
                if not restocked and now >= restock_at:  # during load, by the operator
                    restocked = True
                    restock(database_url, contested, profile.contested_units)
                    restock(database_url, skus[0], 500)
                for c in checkouts:
                    if c.checkout_id:
                        react(run, c)
                time.sleep(0.05)  # the driver's cadence, not a wait for a condition
            last_start = time.monotonic()
            conductor.join()

            by_id = {c.checkout_id: c for c in checkouts if c.checkout_id}

            def quiet() -> bool:
                for c in checkouts:
                    react(run, c)
                # Stripe announces holds whatever else is still going on (a saga that ended
                # unpaid learns of its hold only this way); the scan is throttled by its cost.
                holds = run.stripe_announces_holds(by_id)
                ended = all(
                    tail.terminal(c.checkout_id) is not None and not c.late_hook for c in checkouts
                ) and refunds_answered(run, checkouts)
                return ended and not holds

            quiesced = tail.wait(quiet, profile.quiesce_s)
            quiesced_at = time.monotonic()
            sampler.stop()
            crashed = workers.crashed()
            exits = [(at - t0, role, code, tail_) for at, role, code, tail_ in workers.exits]
            # The workers' logs outlive the run, next to the report, for reading a failure.
            shutil.copytree(workers.logdir, tmp_path / "workers")
        tail.stop()
        payments_log.stop()
        report = judge(
            profile,
            run,
            checkouts,
            proxy,
            conductor,
            sampler,
            database_url,
            skus,
            contested,
            t0,
            last_start,
            quiesced,
            quiesced_at,
        )
    with (tmp_path / "chaos-events.txt").open("w") as out:  # every event of the run, per saga
        for c in checkouts:
            out.write(f"{c.checkout_id} {c.kind} inputs={c.inputs}\n")
            for seen in tail.events.get(c.checkout_id, []):
                out.write(f"  {seen.at - run.t0:8.2f} {seen.message!r}\n")
    with (tmp_path / "chaos-payments.txt").open("w") as out:  # payment requests and replies
        for c in checkouts:
            out.write(f"{c.checkout_id}\n")
            for at, line in payments_log.lines.get(c.checkout_id, []):
                out.write(f"  {at - run.t0:8.2f} {line}\n")
    report.notes.append(
        "workers that exited and were restarted (offset s, role, code): "
        f"{[(round(at, 1), role, code) for at, role, code, _ in exits]}"
    )
    report.notes.append(
        "group probe children aborted by librdkafka (tests/group_probe.py, docs/chaos.md"
        f" finding 10): {workers.probe.aborts}"
    )
    report.notes.append(f"events and worker logs: {tmp_path}")
    text = report.render()
    print("\n" + text)
    (tmp_path / "chaos-report.md").write_text(text)
    if profile.report_path:
        Path(profile.report_path).write_text(text)
    conductor.finish()
    assert not conductor.errors, conductor.errors
    assert crashed == {}, crashed
    # A worker may end itself only when its producer cannot recover in place (infra/processor.py
    # TransactionStuck, or the broker fencing it): a restart is the designed way out.
    unexplained = [e for e in exits if not any(w in e[3] for w in _RECOVERED_BY_RESTART)]
    assert unexplained == [], unexplained
    assert not run.webhook_failures, run.webhook_failures
    assert report.failed() == [], "\n" + text


_RECOVERED_BY_RESTART = ("TransactionStuck", "_FENCED")


def phase_of(profile: Profile, offset: float) -> str:
    if offset < profile.before_s:
        return "before"
    return "during" if offset < profile.before_s + profile.during_s else "after"


def refunds_answered(run: Run, checkouts: list[Checkout]) -> bool:
    for c in checkouts:
        wanted = {i for k, i in c.inputs if k == "refund"}
        if not wanted:
            continue
        answered = {
            e.refund_request_id
            for e in run.tail.of(c.checkout_id)
            if isinstance(e, m.RefundRejected)
        }
        refunded = [e for e in run.tail.of(c.checkout_id) if isinstance(e, m.PaymentRefunded)]
        requested = {
            e.refund_request_id
            for e in run.tail.of(c.checkout_id)
            if isinstance(e, m.RefundRequested)
        }
        # a request accepted is answered once its money moved (one PaymentRefunded per request)
        if not wanted <= answered | requested or len(refunded) < len(requested - answered):
            return False
    return True


def judge(
    profile: Profile,
    run: Run,
    checkouts: list[Checkout],
    proxy: FaultProxy,
    conductor: Conductor,
    sampler: StockSampler,
    database_url: str,
    skus: list[str],
    contested: str,
    t0: float,
    last_start: float,
    quiesced: bool,
    quiesced_at: float,
) -> Report:
    tail = run.tail
    report = Report(profile.name, profile.seed)
    by_id = {c.checkout_id: c for c in checkouts}
    events = {c.checkout_id: tail.of(c.checkout_id) for c in checkouts}
    outcome: dict[str, str] = {}
    for cid, es in events.items():
        t = next((e for e in es if isinstance(e, TERMINAL)), None)
        outcome[cid] = (
            "OPEN"
            if t is None
            else {
                m.CheckoutCompleted: "COMPLETED",
                m.CheckoutFailed: "FAILED",
                m.CheckoutCancelled: "CANCELLED",
                m.CheckoutNeedsAttention: "NEEDS_ATTENTION",
            }[type(t)]
        )
    report.checkouts = len(checkouts)
    report.outcomes = Counter((by_id[cid].kind, o) for cid, o in outcome.items())
    report.fail_reasons = Counter(
        f"{e.step}: {e.reason}"[:80]
        for es in events.values()
        for e in es
        if isinstance(e, m.CheckoutFailed)
    )

    # --- faults injected ---------------------------------------------------------------
    report.faults = Counter({f"stripe {op} {kind}": n for (op, kind), n in proxy.injected.items()})
    report.faults["stripe outage: 500 (requests)"] = proxy.served["error"]
    report.faults["stripe outage: hung writes"] = proxy.served["hang"]
    for _, role, _ in conductor.kills:
        report.faults[f"SIGKILL {role}"] += 1
    for kind, n in run.webhooks_sent.items():
        report.faults[f"webhook: {kind}"] += n
    for code, n in run.webhooks_redelivered.items():
        report.faults[f"webhook redelivered after {code}"] += n
    for code, n in run.starts_retried.items():
        report.faults[f"POST /v1/checkouts retried after {code}"] += n
    for name, answer, _, hits in conductor.vendor_windows:
        report.faults[f"{name} {answer} (requests)"] += hits
    report.faults["commands resent by a new producer"] = run.commands_resent
    report.faults["postgres: connections terminated"] = sum(n for _, n in conductor.pg_kills)
    report.faults["postgres: termination rounds"] = len(conductor.pg_kills)
    for service, _, _ in conductor.down:
        report.faults[
            {"postgres": "postgres restart", "kafka": "broker SIGKILL + restart"}[service]
        ] += 1
    report.notes.append(
        "infrastructure down (service, from s, until s): "
        f"{[(n, round(a, 1), round(b, 1)) for n, a, b in conductor.down]}"
    )
    report.notes.append(
        f"kills at {[(round(t, 1), r, round(s, 1)) for t, r, s in conductor.kills]} "
        f"(offset s, role, s until the successor served); outage at {conductor.outage_at:.0f} s "
        f"for {profile.outage_s:.0f} s; random faults {conductor.faults_on_at:.0f}-"
        f"{conductor.faults_off_at:.0f} s at {profile.fault_rate:.0%} of Stripe requests"
    )

    # --- latency and throughput by phase --------------------------------------------------
    bounds = {
        "before": (0.0, profile.before_s),
        "during": (profile.before_s, profile.before_s + profile.during_s),
        "after": (profile.before_s + profile.during_s, profile.total_s),
    }
    for name, (lo, hi) in bounds.items():
        lat = [
            tail.terminal_at[c.checkout_id] - c.sent_at
            for c in checkouts
            if c.phase == name and c.checkout_id in tail.terminal_at
        ]
        ended = sum(1 for at in tail.terminal_at.values() if lo <= at - t0 < hi)
        report.phases.append(
            (
                name,
                sum(1 for c in checkouts if c.phase == name),
                ended / (hi - lo),
                percentile(lat, 50),
                percentile(lat, 99),
            )
        )
    ends = [tail.terminal_at[c.checkout_id] for c in checkouts if c.checkout_id in tail.terminal_at]
    faults_end = t0 + (conductor.faults_off_at or profile.before_s + profile.during_s)
    report.quiesce_s = (max(ends) - faults_end) if ends else float("nan")
    report.notes.append(
        f"last start at {last_start - t0:.0f} s; every saga terminal "
        f"{(max(ends) - last_start) if ends else float('nan'):.1f} s after it"
    )

    # --- the PSP's own records ------------------------------------------------------------
    ours = set(events)
    intents: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pi in run.stripe_direct.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        data = pi.to_dict()
        cid = (data.get("metadata") or {}).get("checkout_id")
        if cid in ours:
            intents[cid].append(data)
    captures: Counter[str] = Counter()
    for ev in run.stripe_direct.v1.events.list(params={"limit": 100}).auto_paging_iter():
        if ev.type == "payment_intent.succeeded":  # localstripe emits one per capture
            captures[ev.to_dict()["data"]["object"]["id"]] += 1
    refunded: Counter[str] = Counter()  # payment intent -> refunded, as localstripe has it
    pi_ids = {pi["id"] for pis in intents.values() for pi in pis}
    for r in run.stripe_direct.v1.refunds.list(params={"limit": 100}).auto_paging_iter():
        data = r.to_dict()
        if data.get("payment_intent") in pi_ids and data.get("status") in ("succeeded", "pending"):
            refunded[data["payment_intent"]] += int(data["amount"])

    double = [
        (cid, pi["id"], captures[pi["id"]])
        for cid, pis in intents.items()
        for pi in pis
        if captures[pi["id"]] > 1
    ]
    report.check("0 PaymentIntents captured twice", not double, f"{len(double)} {double[:3]}")
    captured_not_completed = [
        (cid, pi["id"], outcome[cid])
        for cid, pis in intents.items()
        for pi in pis
        if captures[pi["id"]] and outcome[cid] != "COMPLETED"
    ]
    report.check(
        "0 captured for a checkout not COMPLETED",
        not captured_not_completed,
        f"{len(captured_not_completed)} {captured_not_completed[:3]}",
    )
    holds = [
        (cid, pi["id"])
        for cid, pis in intents.items()
        for pi in pis
        if pi["status"] == "requires_capture"
    ]
    report.check("0 authorizations left holding funds", not holds, f"{len(holds)} {holds[:3]}")
    several = sum(1 for pis in intents.values() if len(pis) > 1)
    report.notes.append(
        f"{sum(len(p) for p in intents.values())} PaymentIntents for {len(intents)} checkouts"
        f" ({several} with more than one)"
    )

    money_wrong = []
    total_expected = total_net = 0
    admin_refunded = 0
    for cid, es in events.items():
        done = next((e for e in es if isinstance(e, m.CheckoutCompleted)), None)
        paid_back = {e.refund_id: e.amount for e in es if isinstance(e, m.PaymentRefunded)}
        expected = (done.total - sum(paid_back.values())) if done else 0
        admin_refunded += sum(paid_back.values()) if done else 0
        net = 0
        for pi in intents.get(cid, []):
            if captures[pi["id"]]:
                net += int(pi.get("amount_received") or pi["amount"])
            net -= refunded[pi["id"]]
        total_expected += expected
        total_net += net
        if net != expected:
            money_wrong.append((cid, by_id[cid].kind, outcome[cid], expected, net))
    report.check(
        "captured - refunded == completed total - admin refunds (per checkout)",
        not money_wrong,
        f"{len(money_wrong)} wrong {money_wrong[:3]}; overall expected {total_expected},"
        f" PSP {total_net}",
    )
    report.check(
        "money conserved overall",
        total_expected == total_net,
        f"{total_expected} == {total_net}; admin refunds {admin_refunded}",
    )
    asked = [c for c in checkouts if c.kind == "refund" and outcome[c.checkout_id] == "COMPLETED"]
    refund_wrong = []
    for c in asked:
        es = events[c.checkout_id]
        done = next(e for e in es if isinstance(e, m.CheckoutCompleted))
        paid = sum({e.refund_id: e.amount for e in es if isinstance(e, m.PaymentRefunded)}.values())
        rejected = {e.refund_request_id for e in es if isinstance(e, m.RefundRejected)}
        if paid != done.total // 3 or f"rr-{c.checkout_id}-2" not in rejected:
            refund_wrong.append((c.checkout_id, paid, done.total // 3, sorted(rejected)))
    report.check(
        "admin refunds: the part paid once, the excess rejected",
        bool(asked) and not refund_wrong,
        f"{len(asked)} orders refunded; {len(refund_wrong)} wrong {refund_wrong[:3]}",
    )

    # --- stock --------------------------------------------------------------------------------
    # A read that failed while PostgreSQL was restarting (and for a few seconds after) is the
    # restart, not a lost sample; any other failed read is.
    down = [(t0 + a - 1, t0 + b + 5) for n, a, b in conductor.down if n == "postgres"]
    lost = [e for at, e in sampler.errors if not any(lo <= at <= hi for lo, hi in down)]
    bad = [
        s
        for s in sampler.samples
        if s.reserved > s.on_hand or s.on_hand < 0 or s.reserved != s.reserved_lines
    ]
    report.check(
        "0 oversold units at every sample (reserved <= on hand, == reserved lines)",
        bool(sampler.samples) and not bad and not lost,
        f"{len(sampler.samples)} samples, {len(bad)} bad {bad[:2]}, {len(lost)} reads failed"
        f" {lost[:2]} (+{len(sampler.errors) - len(lost)} while PostgreSQL was down)",
    )
    final = {s.sku: s for s in sampler.sample()}
    with psycopg.connect(database_url) as conn:
        audit = conn.execute(
            "SELECT sku, on_hand_before, on_hand_after FROM stock_audit"
            " WHERE sku = ANY(%s) ORDER BY id",
            ([*skus, contested],),
        ).fetchall()
    supplied: Counter[str] = Counter()
    for sku, before, after in audit:
        supplied[sku] += after - (before or 0)
    unbalanced = [
        (sku, supplied[sku], s.committed_lines, s.on_hand, s.reserved)
        for sku, s in final.items()
        if s.on_hand != supplied[sku] - s.committed_lines
        or s.reserved != 0
        or s.committed_lines > supplied[sku]
    ]
    report.check(
        "stock conserved: on hand == supplied - sold, nothing left reserved",
        not unbalanced,
        f"{contested}: supplied {supplied[contested]}, sold {final[contested].committed_lines};"
        f" {unbalanced[:3]}",
    )
    sold_hot = sum(
        1 for c in checkouts if c.kind == "contested" and outcome[c.checkout_id] == "COMPLETED"
    )
    report.check(
        "contested SKU: sold == sales of its completed checkouts, and it sold out",
        sold_hot == final[contested].committed_lines
        and sold_hot > 0
        and any(
            isinstance(e, m.InventoryReservationRejected)
            for c in checkouts
            if c.kind == "contested"
            for e in events[c.checkout_id]
        ),
        f"{sold_hot} completed, {final[contested].committed_lines} units committed",
    )

    # --- sagas ----------------------------------------------------------------------------
    open_ = {
        cid: [type(e).__name__ for e in es][-4:]
        for cid, es in events.items()
        if outcome[cid] == "OPEN"
    }
    report.check(
        "0 sagas non-terminal after the faults stop",
        quiesced and not open_,
        f"{len(open_)} open {dict(list(open_.items())[:3])};"
        f" waited {quiesced_at - last_start:.0f} s",
    )
    parked = [cid for cid, o in outcome.items() if o == "NEEDS_ATTENTION"]
    report.check("0 parked (no permanent fault is injected)", not parked, f"{parked[:3]}")

    dlq_topics = [
        dlq(t)
        for t in (
            CHECKOUT_COMMANDS,
            "checkout.replies",
            *(f"adapter.{a}.requests" for a in ("inventory", "tax", "shipping", "payment")),
        )
    ]
    keys = {cid.encode() for cid in ours}
    dead: dict[str, list[str]] = defaultdict(list)
    for topic in dlq_topics:
        for key, reason in read_to_end(run.bootstrap, topic, keys):
            dead[key.decode()].append(f"{topic}: {reason[:120]}")
    unprocessed = []
    for c in checkouts:
        es = events[c.checkout_id]
        for kind, ident in c.inputs:
            if kind == "start":
                ok = any(isinstance(e, m.CheckoutStarted) for e in es)
            elif kind == "cancel":
                ok = any(
                    isinstance(e, (m.CheckoutCancelled, m.CancellationRejected)) for e in es
                ) or outcome[c.checkout_id] in ("COMPLETED", "FAILED")
            elif kind == "refund":
                ok = any(
                    isinstance(e, (m.RefundRequested, m.RefundRejected))
                    and e.refund_request_id == ident
                    for e in es
                )
            else:
                ok = any(
                    isinstance(e, m.PaymentSignalRecorded) and e.provider_event_id == ident
                    for e in es
                )
            if not ok and not dead.get(c.checkout_id):
                unprocessed.append((c.checkout_id, kind, ident))
    no_reason = [(cid, r) for cid, rs in dead.items() for r in rs if r.split(": ", 1)[1] == ""]
    report.check(
        "every input processed or in a DLQ with its reason",
        not unprocessed and not no_reason,
        f"{sum(len(c.inputs) for c in checkouts)} inputs; {len(unprocessed)} unaccounted"
        f" {unprocessed[:3]}; "
        f"{sum(len(v) for v in dead.values())} DLQ records {list(dead.items())[:2]}",
    )
    should = [c for c in checkouts if c.kind in MUST_COMPLETE]
    missed = [
        (c.checkout_id, c.kind, outcome[c.checkout_id])
        for c in should
        if outcome[c.checkout_id] != "COMPLETED"
    ]
    report.check(
        "checkouts that would complete without faults complete",
        not missed,
        f"{len(should) - len(missed)}/{len(should)}; missed {missed[:4]}",
    )
    wrongly = [
        (c.checkout_id, c.kind)
        for c in checkouts
        if c.kind in MUST_NOT_COMPLETE and outcome[c.checkout_id] == "COMPLETED"
    ]
    report.check(
        "declined and cancelled-before-paying checkouts never complete",
        not wrongly,
        f"{len(wrongly)} {wrongly[:3]}",
    )
    return report
