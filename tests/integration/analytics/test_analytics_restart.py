"""On the embedded broker: SIGKILL the app mid-stream, twice, and the rows are exactly those
of an uninterrupted run. The first kill comes after the group committed the first part of the
stream, so the restarted app can only know it from its tables' changelogs; the second after an
app that never commits counted the second part, so that part is delivered again on top of
state that already holds it."""

from __future__ import annotations

import signal

import pytest

from events.serde import Serde
from tests.analytics_stream import T0, recorded_stream
from tests.integration.analytics.harness import AnalyticsProcess, produce_in_transaction, table_rows
from tests.integration.analytics.test_analytics_windows import TABLES, expected_rows

pytestmark = pytest.mark.integration

NEVER_COMMITS = {"ANALYTICS_COMMIT_INTERVAL_MS": "86400000"}


def test_a_sigkill_mid_stream_and_a_restart_leave_the_same_rows(
    analytics: AnalyticsProcess, serde: Serde, unique_id: str
) -> None:
    bootstrap = analytics.settings.kafka_bootstrap_servers or ""
    stream = recorded_stream(unique_id)
    cut = 12  # c1 and c2 done, c3 half way: minute 0 complete, minute 1 not yet
    db = analytics.database_url

    def minute_0_completed() -> object:
        return table_rows(db, "checkout_metrics_minutely").get((T0, "checkouts_completed", "all"))

    produce_in_transaction(bootstrap, analytics.source, serde, stream[:cut], commit=True)
    analytics.start()
    first_part = analytics.end_of(cut)
    analytics.wait("the first part committed", lambda: analytics.committed() >= first_part)
    analytics.wait("minute 0 flushed", lambda: minute_0_completed() == 1)
    analytics.kill(signal.SIGKILL)

    analytics.start(**NEVER_COMMITS)
    produce_in_transaction(bootstrap, analytics.source, serde, stream[cut:], commit=True)
    # A restored first part plus the second: the whole stream.
    analytics.wait(
        "every row of the whole stream",
        lambda: all(table_rows(db, t) == expected_rows(t) for t in TABLES),
    )
    analytics.kill(signal.SIGKILL)
    assert analytics.committed() == first_part  # the second part will come again

    analytics.start()
    analytics.settle(len(stream))
    for table in TABLES:
        assert table_rows(db, table) == expected_rows(table)
