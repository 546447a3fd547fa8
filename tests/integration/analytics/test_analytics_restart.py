"""On the embedded broker: SIGKILL the app mid-stream, write the rest, start it again, and the
rows are exactly those of an uninterrupted run (nothing lost, nothing counted twice)."""

from __future__ import annotations

import signal

import pytest

from events.serde import Serde
from tests.analytics_stream import T0, recorded_stream
from tests.integration.analytics.harness import AnalyticsProcess, produce_in_transaction, table_rows
from tests.integration.analytics.test_analytics_windows import TABLES, expected_rows

pytestmark = pytest.mark.integration


def test_a_sigkill_mid_stream_and_a_restart_leave_the_same_rows(
    analytics: AnalyticsProcess, serde: Serde, unique_id: str
) -> None:
    bootstrap = analytics.settings.kafka_bootstrap_servers or ""
    stream = recorded_stream(unique_id)
    cut = 12  # c1 and c2 done, c3 half way: minute 0 complete, minute 1 not yet
    db = analytics.database_url
    produce_in_transaction(bootstrap, analytics.source, serde, stream[:cut], commit=True)
    analytics.start()
    analytics.wait(
        "minute 0 flushed",
        lambda: (
            table_rows(db, "checkout_metrics_minutely").get((T0, "checkouts_completed", "all")) == 1
        ),
    )
    # No chance to commit what it has read since its last commit: those come again.
    analytics.kill(signal.SIGKILL)
    produce_in_transaction(bootstrap, analytics.source, serde, stream[cut:], commit=True)
    analytics.start()
    analytics.wait(
        "the expected rows after the restart",
        lambda: all(table_rows(db, t) == expected_rows(t) for t in TABLES),
    )
    analytics.settle(len(stream))
    for table in TABLES:
        assert table_rows(db, table) == expected_rows(table)
