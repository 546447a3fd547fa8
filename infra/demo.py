"""`saga demo`: the engine's main job on the embedded stack, in one process.

Starts the orchestrator and every adapter processor (real adapters: PostgreSQL inventory,
rate-table tax and shipping, Stripe via localstripe), the notifier, the projector and the HTTP
API; sends a handful of checkouts — including a declined card and an out-of-stock item — as a
storefront would (POST /v1/checkouts with an API key), and prints what happened, what the API
answers about each checkout, which emails the inbox received, and the analysts' views.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from events import messages as m
from events.envelope import Envelope
from events.serde import Serde, make_serde
from events.topics import CHECKOUT_EVENTS
from infra.embedded.smtp import inbox_at
from infra.settings import Settings
from infra.topics import ensure_topics

AUDITED_SKU = "SKU-HOODIE-GRY-XL"  # under a stock take during the demo (infra/stock_take.py)
TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled, m.CheckoutNeedsAttention)


@dataclass(frozen=True)
class Scenario:
    label: str
    items: tuple[m.LineItem, ...]
    card: str  # a Stripe test token, or a test card number the "storefront" tokenizes
    country: str = "US"


def tokenize(settings: Settings, card: str) -> str:
    """What Stripe.js does in the customer's browser: card number -> PaymentMethod id."""
    if card.startswith("pm_"):
        return card
    import stripe

    assert settings.stripe_api_key  # the embedded stack generates one
    client = stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base or ""}
    )
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(pm.id)


def scenarios(n: int) -> list[Scenario]:
    # SKUs from adapters/inventory/seed_stock.json
    good = Scenario(
        "happy path",
        (m.LineItem("SKU-TSHIRT-BLK-M", 2, 1999), m.LineItem("SKU-MUG-LOGO", 1, 1250)),
        "pm_card_visa",
    )
    special = [
        Scenario("card declined", (m.LineItem("SKU-MUG-LOGO", 1, 1250),), "4000000000000341"),
        Scenario("out of stock", (m.LineItem("SKU-LIMITED-POSTER", 5, 4999),), "pm_card_visa"),
        # Declined while its SKU is under a stock take: its units cannot go back, so it parks.
        Scenario(
            "declined during a stock take", (m.LineItem(AUDITED_SKU, 1, 5900),), "4000000000000341"
        ),
    ]
    return [good] * max(1, n - len(special)) + special[: max(0, n - 1)]


@contextlib.contextmanager
def engine(settings: Settings, console: Console, log_path: Path) -> Iterator[str]:
    """The engine as `saga run` runs it: every worker role and the API as supervised child
    processes against this stack. Yields the API's URL once it is ready; on the way out the
    children stop before the caller stops the stack (no client outlives its broker)."""
    import threading

    from infra.run_cli import ALL_ROLES
    from infra.settings import child_environ, to_environ
    from infra.supervisor import Supervisor, specs

    port = _free_port()
    env = child_environ(
        {
            **to_environ(settings),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
    )
    with log_path.open("a") as log:
        supervisor = Supervisor(
            specs(ALL_ROLES, [0], api=True), env, say=lambda text: print(text, file=log), out=log
        )
        thread = threading.Thread(target=supervisor.run, name="demo-supervisor", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, thread, timeout_s=120)
            console.print(
                f"engine: {len(ALL_ROLES)} worker roles and the API as `saga run` runs them "
                f"(their output: {log_path})"
            )
            yield url
        finally:
            supervisor.stop()
            thread.join(60)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, supervisor: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and supervisor.is_alive():
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API at {url} was not ready within {timeout_s:.0f}s")


def storefront_key(settings: Settings) -> str:
    """A fresh storefront API key (what an operator hands a shop: `saga keys create`)."""
    from api.keys import create_api_key

    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return create_api_key(conn, "demo-shop", f"demo-{uuid.uuid4().hex[:6]}")


def console_url(settings: Settings, api_url: str, hours: int = 8) -> str:
    """The operator console with a short-lived operator token in the URL's fragment (never
    sent to the server or written to its logs; the page keeps it for the tab)."""
    from api.auth import make_token

    assert settings.jwt_secret
    token = make_token(
        settings.jwt_secret,
        sub="demo-operator",
        role="operator",
        exp=int(time.time()) + hours * 3600,
    )
    return f"{api_url}/console#token={token}"


def start(api: httpx.Client, settings: Settings, scenario: Scenario, email: str) -> str:
    """What a storefront does: POST /v1/checkouts with an Idempotency-Key; 202 -> the id."""
    body = {
        "customer": {"id": "cus-demo", "email": email},
        "currency": "USD",
        "items": [
            {"sku": i.sku, "quantity": i.quantity, "unit_amount": i.unit_amount}
            for i in scenario.items
        ],
        "shipping_address": {
            "line1": "1 Market St",
            "city": "San Francisco",
            "state": "CA",
            "postal_code": "94105",
            "country": scenario.country,
        },
        "payment": {"provider": "stripe", "payment_method": tokenize(settings, scenario.card)},
    }
    response = api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/checkouts: {response.status_code} {response.text}")
    return str(response.json()["checkout_id"])


def wait_for_outcomes(
    settings: Settings, serde: Serde, checkout_ids: set[str], timeout_s: float
) -> dict[str, list[Envelope[Any]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"demo-{uuid.uuid4()}",
            "isolation.level": settings.kafka_isolation_level,
            "enable.auto.commit": False,
        }
    )
    meta = consumer.list_topics(CHECKOUT_EVENTS, timeout=10).topics[CHECKOUT_EVENTS]
    consumer.assign([TopicPartition(CHECKOUT_EVENTS, p, 0) for p in meta.partitions])
    history: dict[str, dict[str, Envelope[Any]]] = {c: {} for c in checkout_ids}
    done: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while done != checkout_ids and time.monotonic() < deadline:
            for record in consumer.consume(500, 0.2):
                key = (record.key() or b"").decode()
                if record.error() or key not in history:
                    continue
                envelope = serde.decode(record.value() or b"", CHECKOUT_EVENTS)
                history[key].setdefault(envelope.message_id, envelope)  # dedup (decision 0006)
                if isinstance(envelope.message, TERMINAL):
                    done.add(key)
    finally:
        consumer.close()
    return {c: list(h.values()) for c, h in history.items()}


def run_demo(
    settings: Settings,
    n: int,
    console: Console,
    timeout_s: float = 120,
    *,
    workdir: Path,
    serve: Callable[[], None] | None = None,
) -> bool:
    """Run the scenarios through the engine and print what happened and what an operator can
    do next. `serve`, when given, is called with the engine still running (the interactive
    demo waits there for Ctrl-C) before everything stops."""
    assert settings.kafka_bootstrap_servers and settings.database_url
    report = ensure_topics(
        settings.kafka_bootstrap_servers, settings.partitions, settings.replication_factor
    )
    console.print(f"topics: {len(report.created)} created, {len(report.existing)} present")
    serde = make_serde(settings.schema_registry_url)
    plan = scenarios(n)
    # The shop stocks its SKUs the way an operator does (`saga stock load`); workers never do.
    from adapters.inventory.seed import seed_stock
    from infra.adapters_wiring import stock_store
    from infra.stock_take import freeze_releases, lift_freeze

    seed_stock(stock_store(settings), actor="demo", reason="demo shop")
    freeze_releases(settings.database_url, AUDITED_SKU)
    key = storefront_key(settings)
    with engine(settings, console, workdir / "engine.log") as base_url:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as api:
            started = time.monotonic()
            # One address per run: the inbox may hold mail of earlier runs.
            buyer = f"buyer+{uuid.uuid4().hex[:8]}@example.com"
            ids = {start(api, settings, s, buyer): s for s in plan}
            console.print(f"POST /v1/checkouts x{len(ids)} at {base_url}: all 202 Accepted")
            typo_key = send_truncated_command(settings)
            outcomes = wait_for_outcomes(settings, serde, set(ids), timeout_s)
            elapsed = time.monotonic() - started
            views = wait_for_views(api, outcomes, timeout_s=30)
            dead = wait_for_dead_letter(settings, typo_key, timeout_s=60)
        # The stock take is over: the parked checkout can now give its units back.
        lift_freeze(settings.database_url, AUDITED_SKU)
        emails = wait_for_emails(settings, buyer, expected_emails(outcomes), timeout_s=30)
        all_finished = print_outcomes(console, ids, outcomes, views, elapsed)
        print_emails(console, settings, emails)
        completed = sum(
            any(isinstance(e.message, m.CheckoutCompleted) for e in h) for h in outcomes.values()
        )
        wait_for_analyst_views(settings, completed, timeout_s=30)
        print_analyst_views(console, settings)
        env_file = write_env(settings, workdir)
        print_next_steps(console, settings, base_url, ids, outcomes, dead, env_file)
        if serve is not None:
            serve()
    return all_finished and dead is not None


def print_outcomes(
    console: Console,
    ids: dict[str, Scenario],
    outcomes: dict[str, list[Envelope[Any]]],
    views: dict[str, dict[str, Any]],
    elapsed: float,
) -> bool:
    table = Table(title=f"{len(ids)} checkouts in {elapsed:.1f}s through the real broker")
    for column in ("checkout", "scenario", "outcome", "total", "events", "GET status", "detail"):
        table.add_column(column)
    all_finished = True
    for checkout_id, scenario in ids.items():
        events = [e.message for e in outcomes[checkout_id]]
        final = next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)
        all_finished &= final is not None
        outcome, total, detail = describe(final)
        api_status = views.get(checkout_id, {}).get("status", "?")
        all_finished &= api_status == outcome
        table.add_row(
            checkout_id, scenario.label, outcome, total, str(len(events)), api_status, detail[:60]
        )
    console.print(table)
    return all_finished


def send_truncated_command(settings: Settings) -> str:
    """What a storefront writing straight to Kafka sends when its serializer is broken: a
    record that is not a command. The orchestrator dead-letters it with the reason."""
    from confluent_kafka import Producer

    from events.topics import CHECKOUT_COMMANDS

    key = f"co-demo-typo-{uuid.uuid4().hex[:6]}"
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        producer.produce(CHECKOUT_COMMANDS, key=key, value=b'{"type": "StartCheckout", "payl')
        if producer.flush(30):
            raise RuntimeError("the broker did not take the demo's record")
    finally:
        producer.close()
    return key


def wait_for_dead_letter(settings: Settings, key: str, timeout_s: float) -> Any:
    """The dead letter of `key` (infra/dlq.py), once the orchestrator has written it."""
    from infra.dlq import dlq_topics, read_dead_letters

    assert settings.kafka_bootstrap_servers
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = dlq_topics(settings.kafka_bootstrap_servers)
        letters = read_dead_letters(settings.kafka_bootstrap_servers, topics)
        found = [d for d in letters if (d.key or b"").decode() == key]
        if found:
            return found[0]
        time.sleep(0.5)
    return None


def write_env(settings: Settings, workdir: Path) -> Path:
    """The demo's URLs and secrets as `saga up` writes them, so the CLI can reach this stack
    while the demo serves: eval "$(saga env --data-dir DIR)"."""
    import os
    import shlex

    from infra.settings import to_environ

    values = to_environ(settings)
    values.setdefault("KAFKA_ISOLATION_LEVEL", settings.kafka_isolation_level)
    path = workdir / "saga.env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(values.items())))
    return path


def print_next_steps(
    console: Console,
    settings: Settings,
    api_url: str,
    ids: dict[str, Scenario],
    outcomes: dict[str, list[Envelope[Any]]],
    dead: Any,
    env_file: Path,
) -> None:
    def final_of(checkout_id: str) -> Any:
        return next(
            (e.message for e in reversed(outcomes[checkout_id]) if isinstance(e.message, TERMINAL)),
            None,
        )

    compensated = [
        c
        for c in ids
        if isinstance(final_of(c), m.CheckoutFailed) and final_of(c).step == "authorize_payment"
    ]
    parked = [c for c in ids if isinstance(final_of(c), m.CheckoutNeedsAttention)]
    say = lambda text: console.print(text, soft_wrap=True, highlight=False)  # noqa: E731
    say("\n[bold]What an operator can do now[/bold] (README: Operator walkthrough)")
    say(f"  operator console:  {console_url(settings, api_url)}")
    say(f'  CLI on this stack: eval "$(saga env --data-dir {env_file.parent})"')
    if compensated:
        say(f"  a compensated checkout (declined, its stock released): {compensated[0]}")
        say(f"      saga inspect {compensated[0]}")
    if dead is not None:
        say(f"  a dead letter ({dead.error}): {dead.id}")
        say(f"      saga dlq show {dead.id}")
        say(f"      saga dlq redrive --id {dead.id} --reason 'replay it'")
    for checkout_id in parked:
        say(f"  a parked saga, its stock take now over: {checkout_id}")
        say(f"      saga checkout retry {checkout_id} --reason 'stock take done'")


def wait_for_views(
    api: httpx.Client, outcomes: dict[str, list[Envelope[Any]]], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """GET /v1/checkouts/{id} until the projection shows each saga's final status."""
    final = {
        c: describe(
            next((e.message for e in reversed(h) if isinstance(e.message, TERMINAL)), None)
        )[0]
        for c, h in outcomes.items()
    }
    views: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for checkout_id in final:
            views[checkout_id] = api.get(f"/v1/checkouts/{checkout_id}").json()
        if all(views[c].get("status") == status for c, status in final.items()):
            break
        time.sleep(0.2)
    return views


def wait_for_analyst_views(settings: Settings, completed: int, timeout_s: float) -> None:
    """Until the revenue view counts every completed order (the projector reads the public
    order events on its own consumer, so it may trail the checkouts' status a little)."""
    assert settings.database_url
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT coalesce(sum(order_count), 0) FROM projections.daily_revenue"
            ).fetchone()
            if row is not None and int(row[0]) >= completed:
                return
            time.sleep(0.2)


def print_analyst_views(console: Console, settings: Settings) -> None:
    """What an analyst sees in PostgreSQL right after the demo (docs/projections.md)."""
    assert settings.database_url
    queries = {
        "daily_revenue": "SELECT day, currency, gross, refunded, net, order_count"
        " FROM projections.daily_revenue ORDER BY day DESC, currency LIMIT 5",
        "checkout_funnel": "SELECT * FROM projections.checkout_funnel ORDER BY 1 DESC LIMIT 8",
        "step_latency": "SELECT * FROM projections.step_latency ORDER BY 1",
    }
    with psycopg.connect(settings.database_url) as conn:
        for title, sql in queries.items():
            cursor = conn.execute(sql)
            table = Table(title=f"analysts: {title}")
            for column in cursor.description or []:
                table.add_column(column.name)
            for row in cursor.fetchall():
                table.add_row(*("" if v is None else str(v) for v in row))
            console.print(table)


# Terminal event -> the email the notifier sends for it.
_EMAIL_KIND = {
    m.CheckoutCompleted: "order_confirmation",
    m.CheckoutFailed: "checkout_failed",
    m.CheckoutCancelled: "checkout_cancelled",
}


def expected_emails(outcomes: dict[str, list[Envelope[Any]]]) -> Counter[str]:
    expected: Counter[str] = Counter()
    for events in outcomes.values():
        for e in events:
            kind = _EMAIL_KIND.get(type(e.message))
            if kind is not None:
                expected[kind] += 1
    return expected


def wait_for_emails(
    settings: Settings, to: str, expected: Counter[str], timeout_s: float
) -> Counter[str] | None:
    """Emails per kind the embedded inbox got for `to`, once it has every expected one or the
    deadline passed; None when mail goes to an outside server we cannot read."""
    inbox = inbox_at(settings.smtp_url)
    if inbox is None:
        return None
    deadline = time.monotonic() + timeout_s
    while True:
        got = Counter(e.kind for e in inbox.messages() if e.to == to)
        if all(got[k] >= n for k, n in expected.items()) or time.monotonic() >= deadline:
            return got
        time.sleep(0.1)


def print_emails(console: Console, settings: Settings, emails: Counter[str] | None) -> None:
    if not settings.smtp_url:
        console.print("emails: none sent (no SMTP_URL and no embedded inbox)")
    elif emails is None:
        console.print(f"emails: sent through {settings.smtp_url} (not an inbox we can read)")
    else:
        table = Table(title=f"demo inbox {settings.smtp_url}")
        table.add_column("email kind")
        table.add_column("received")
        for kind, count in sorted(emails.items()):
            table.add_row(kind, str(count))
        if not emails:
            table.add_row("-", "0")
        console.print(table)


def describe(final: Any) -> tuple[str, str, str]:
    if isinstance(final, m.CheckoutCompleted):
        major, minor = divmod(final.total, 100)  # display only; USD has two decimals
        return "COMPLETED", f"{major}.{minor:02d} {final.currency}", f"order {final.order_id}"
    if isinstance(final, m.CheckoutFailed):
        return "FAILED", "-", f"{final.step}: {final.reason}"
    if isinstance(final, m.CheckoutCancelled):
        return "CANCELLED", "-", final.reason
    if isinstance(final, m.CheckoutNeedsAttention):
        return "NEEDS_ATTENTION", "-", final.reason
    return "UNFINISHED", "-", "no terminal event before the deadline"
