"""On the embedded broker: a recorded stream yields exactly the expected window rows in
PostgreSQL, records of an aborted transaction are not counted, an unreadable record is skipped,
and replaying the stream twice leaves every row (updated_at included) as it was."""

from __future__ import annotations

from typing import Any

import pytest

from events import messages as m
from events.envelope import Envelope
from events.serde import Serde
from tests.analytics_stream import EXPECTED, T0, recorded_stream
from tests.integration.analytics.harness import (
    AnalyticsProcess,
    full_rows,
    produce_in_transaction,
    running,
    table_rows,
)
from tests.integration.kafka_helpers import produce_raw

pytestmark = pytest.mark.integration

TABLES = ("checkout_metrics_minutely", "checkout_metrics_quarter_hourly")


def expected_rows(table: str) -> dict[tuple[int, str, str], Any]:
    return {
        (start, metric, dimension): value
        for (name, start), found in EXPECTED.items()
        if name == table
        for (metric, dimension), value in found.items()
    }


def aborted(run: str) -> list[Envelope[Any]]:
    # Would add a start, a completion and USD revenue to minute 0 if it were counted.
    cid = f"{run}-aborted"
    started = recorded_stream(run)[0].message
    return [
        Envelope.new(
            m.CheckoutStarted(
                **{**{f: getattr(started, f) for f in started.__slots__}, "checkout_id": cid}
            ),
            occurred_at=T0 + 10_000,
            producer="recorded",
        ),
        Envelope.new(
            m.CheckoutCompleted(cid, f"o-{cid}", 1, 0, 0, 1, "USD", T0 + 20_000),
            occurred_at=T0 + 20_000,
            producer="recorded",
        ),
    ]


def test_the_recorded_stream_yields_exactly_the_expected_rows_and_a_replay_changes_nothing(
    analytics: AnalyticsProcess, serde: Serde, unique_id: str
) -> None:
    bootstrap = analytics.settings.kafka_bootstrap_servers or ""
    stream = recorded_stream(unique_id)
    half = len(stream) // 2
    produce_in_transaction(bootstrap, analytics.source, serde, stream[:half], commit=True)
    produce_in_transaction(bootstrap, analytics.source, serde, aborted(unique_id), commit=False)
    produce_in_transaction(bootstrap, analytics.source, serde, stream[half:], commit=True)
    db = analytics.database_url
    with running(analytics):
        analytics.wait(
            "the expected rows",
            lambda: all(table_rows(db, t) == expected_rows(t) for t in TABLES),
        )
        analytics.settle(len(stream))
        for table in TABLES:
            assert table_rows(db, table) == expected_rows(table)
        before = {t: full_rows(db, t) for t in TABLES}
        # Bytes no serde reads: logged, counted and skipped; the app goes on counting.
        produce_raw(bootstrap, analytics.source, b"garbage", b"\x00not avro")
        # A replay: the same records again, twice (as a producer retry or a re-drive would).
        for _ in range(2):
            produce_in_transaction(bootstrap, analytics.source, serde, stream, commit=True)
        analytics.settle(3 * len(stream) + 1)
        view = analytics.view()
    assert {t: full_rows(db, t) for t in TABLES} == before
    assert view is not None and view["ready"] is True
    assert view["unreadable_records"] == 1
    assert "Crashed" not in analytics.log_text()
    minute_0 = next(w for w in view["minutely"] if w["window_start"] == T0)
    assert minute_0["metrics"]["checkouts_started"] == {"all": 2}
    assert minute_0["metrics"]["conversion_rate"] == {"all": "0.5000"}
