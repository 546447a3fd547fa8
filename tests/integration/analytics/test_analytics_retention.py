"""On the embedded broker: windows older than the retention behind the newest event leave the
app's memory with their rows kept in PostgreSQL, and an event older than that is not counted,
so it cannot overwrite a complete window's rows with a part of them."""

from __future__ import annotations

from typing import Any

import pytest

from events import messages as m
from events.envelope import Envelope
from events.serde import Serde
from infra.partitioner import partition_for
from tests.analytics_stream import T0, recorded_stream
from tests.integration.analytics.harness import (
    PARTITIONS,
    AnalyticsProcess,
    full_rows,
    produce_in_transaction,
)
from tests.integration.analytics.test_analytics_windows import TABLES

pytestmark = pytest.mark.integration

HOUR = 3_600_000


def started(cid: str, at: int) -> Envelope[Any]:
    template = recorded_stream("x")[0].message
    fields = {f: getattr(template, f) for f in template.__slots__}
    return Envelope.new(
        m.CheckoutStarted(**{**fields, "checkout_id": cid}), occurred_at=at, producer="t"
    )


def one_per_partition(run: str) -> list[str]:
    ids: dict[int, str] = {}
    i = 0
    while len(ids) < PARTITIONS:
        cid = f"{run}-later-{i}"
        ids.setdefault(partition_for(cid.encode(), PARTITIONS), cid)
        i += 1
    return list(ids.values())


def test_old_windows_leave_memory_and_late_events_change_no_row(
    analytics: AnalyticsProcess, serde: Serde, unique_id: str
) -> None:
    bootstrap = analytics.settings.kafka_bootstrap_servers or ""
    db = analytics.database_url
    stream = recorded_stream(unique_id)
    produce_in_transaction(bootstrap, analytics.source, serde, stream, commit=True)
    analytics.start(ANALYTICS_RETENTION_MINUTES="20")
    analytics.settle(len(stream))
    before = {t: full_rows(db, t) for t in TABLES}

    def live_starts() -> set[int]:
        return {w["window_start"] for w in analytics.live()["minutely"]}

    assert T0 in live_starts()
    # An hour later in every partition: the windows at T0 are 40 minutes past the retention.
    later = [started(cid, T0 + HOUR) for cid in one_per_partition(unique_id)]
    # Then a straggler for minute 0 (a new checkout, so it would count if it were let in).
    late = [started(f"{unique_id}-straggler", T0 + 30_000)]
    produce_in_transaction(bootstrap, analytics.source, serde, later, commit=True)
    produce_in_transaction(bootstrap, analytics.source, serde, late, commit=True)
    analytics.settle(len(stream) + len(later) + len(late))
    assert analytics.live()["late_events_not_counted"] == 1
    assert T0 not in live_starts() and T0 + HOUR in live_starts()
    after = {t: full_rows(db, t) for t in TABLES}
    for table in TABLES:
        old = [r for r in after[table] if r[0].timestamp() * 1000 < T0 + HOUR - 15 * 60_000]
        assert old == before[table]  # the dropped windows' rows are exactly as they were
