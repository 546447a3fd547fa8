"""Properties of `apply_records` on the real PostgreSQL, over random streams of real messages:
revenue equals captured minus refunded; duplicates change nothing; early events are parked."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.migrate import upgrade
from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_EVENTS
from projections import store
from projections.apply import Record, apply_records
from tests.integration.projections.streams import DAY_MS, T0, Scenario, checkout_stream

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
SCHEMA = "projections"
TABLES = "checkouts, checkout_steps, orders, order_lines, payments, refunds, " + (
    "projection_applied_events, projection_parked_events, projection_offsets"
)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    upgrade(database_url, schema=SCHEMA)
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def _apply(conn: psycopg.Connection[Any], envelopes: list[Envelope[Any]]) -> None:
    records = [
        Record(CHECKOUT_EVENTS, 0, i, SERDE.encode(env, CHECKOUT_EVENTS))
        for i, env in enumerate(envelopes)
    ]
    with conn.transaction():
        store.use_schema(conn, SCHEMA)
        apply_records(conn, SERDE, records)


def _started(cid: str, currency: str) -> m.CheckoutStarted:
    return m.CheckoutStarted(
        cid,
        "shop",
        "cus",
        "c@example.com",
        currency,
        (m.LineItem("SKU", 1, 1000),),
        m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        "stripe",
        "pm",
        1000,
        T0,
    )


# One operation on a checkout's payments: (kind, payment index, refund index, amount, day)
ops = st.lists(
    st.tuples(
        st.sampled_from(["capture", "refund", "duplicate"]),
        st.integers(0, 1),
        st.integers(0, 2),
        st.integers(1, 5_000),
        st.integers(0, 3),
    ),
    max_size=12,
)
checkouts = st.lists(st.tuples(st.sampled_from(["EUR", "USD"]), ops), min_size=1, max_size=4)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(checkouts=checkouts)
def test_daily_net_is_captured_minus_refunded(
    conn: psycopg.Connection[Any], checkouts: list[tuple[str, list[Any]]]
) -> None:
    conn.execute(f"TRUNCATE {', '.join(f'{SCHEMA}.{t.strip()}' for t in TABLES.split(','))}")
    envelopes: list[Envelope[Any]] = []
    expected: dict[tuple[date, str], int] = defaultdict(int)
    for currency, steps in checkouts:
        cid = f"co-{uuid.uuid4().hex[:8]}"
        envelopes.append(Envelope.new(_started(cid, currency), occurred_at=T0, producer="t"))
        captured: set[str] = set()
        refunded: set[str] = set()
        for kind, p, r, amount, day in steps:
            at = T0 + day * DAY_MS + len(envelopes)
            when = datetime.fromtimestamp(at / 1000, UTC).date()
            pid, rid = f"pi-{cid}-{p}", f"re-{cid}-{p}-{r}"
            if kind == "duplicate":
                envelopes.append(envelopes[-1])  # same message_id again, as Tansu delivers
                continue
            if kind == "capture":
                msg: Any = m.PaymentCaptured(cid, 1, "stripe", pid, amount, currency)
                if pid not in captured:  # a payment is captured once; later copies are late news
                    captured.add(pid)
                    expected[(when, currency)] += amount
            else:
                msg = m.PaymentRefunded(cid, 1, pid, rid, amount, currency)
                if pid in captured and rid not in refunded:  # the provider's refund id is unique
                    refunded.add(rid)
                    expected[(when, currency)] -= amount
            envelopes.append(Envelope.new(msg, occurred_at=at, producer="t"))
    _apply(conn, envelopes[: len(envelopes) // 2])
    _apply(conn, envelopes[len(envelopes) // 2 :])
    rows = conn.execute(
        f"SELECT day, currency, gross, refunded, net FROM {SCHEMA}.daily_revenue"
    ).fetchall()
    got = {(d, c): net for d, c, _gross, _refunded, net in rows}
    for _day, _currency, gross, refunded, net in rows:
        assert net == gross - refunded
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}


def test_duplicates_change_nothing_and_early_events_are_parked(
    conn: psycopg.Connection[Any], unique_id: str
) -> None:
    stream = [
        env
        for topic, env in checkout_stream(Scenario(f"co-{unique_id}", refunds=(100,)))
        if topic == CHECKOUT_EVENTS
    ]
    start, rest = stream[0], stream[1:]
    _apply(conn, rest[:5])  # no CheckoutStarted yet: parked, not dropped
    parked = conn.execute(f"SELECT count(*) FROM {SCHEMA}.projection_parked_events").fetchone()
    assert parked == (5,)
    _apply(conn, [start, *rest])
    state = _tables(conn)
    assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.projection_parked_events").fetchone() == (
        0,
    )
    assert conn.execute(f"SELECT status FROM {SCHEMA}.checkouts").fetchone() == ("COMPLETED",)
    _apply(conn, stream + stream)
    assert _tables(conn) == state


def _tables(conn: psycopg.Connection[Any]) -> list[Any]:
    out = []
    for table in ("checkouts", "checkout_steps", "orders", "payments", "refunds", "daily_revenue"):
        out.append(conn.execute(f"SELECT * FROM {SCHEMA}.{table} ORDER BY 1").fetchall())
    return out
