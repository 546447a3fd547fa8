"""The flusher: rows recomputed per window, written only when they differ; alerts due once."""

from __future__ import annotations

from typing import Any

from analytics.alerts import Breach, Thresholds
from analytics.flush import Flusher
from analytics.metrics import Rows
from analytics.windows import fold
from tests.analytics_stream import EXPECTED, recorded_stream


class Store:
    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[int, int], Rows]] = {}
        self.writes = 0
        self.alerts: list[Breach] = []

    def upsert(self, table: str, windows: dict[tuple[int, int], Rows]) -> int:
        self.writes += 1
        self.tables.setdefault(table, {}).update(windows)
        return sum(len(r) for r in windows.values())

    def sent_alert_ids(self) -> set[str]:
        return {b.alert_id for b in self.alerts}

    def record_alert(self, breach: Breach) -> bool:
        self.alerts.append(breach)
        return True


def snapshot(run: str, partitions: int = 2) -> dict[str, list[tuple[Any, Any]]]:
    """As faust's tables hold the stream: per window, each partition's share of the facts."""
    stream = recorded_stream(run)
    out: dict[str, list[tuple[Any, Any]]] = {}
    for p in range(partitions):
        share = [e for e in stream if hash(e.checkout_id) % partitions == p]
        for (name, start), state in fold(share).items():
            size = 60 if name == "checkout_metrics_minutely" else 900
            key = (str(p), (start / 1000, start / 1000 + size - 0.1))
            out.setdefault(name, []).append((key, state))
    return out


def test_partitions_are_merged_into_the_expected_rows_and_written_once() -> None:
    store = Store()
    flusher = Flusher(store, Thresholds())  # type: ignore[arg-type]
    assert flusher.flush(snapshot("u")) == []
    written = {(t, start): rows for t, w in store.tables.items() for (start, _), rows in w.items()}
    assert written == EXPECTED
    writes = store.writes
    flusher.flush(snapshot("u"))
    assert store.writes == writes  # nothing changed: nothing written
    assert flusher.flushes == 2


def test_a_due_alert_is_not_due_again_once_sent() -> None:
    store = Store()
    flusher = Flusher(store, Thresholds(min_samples=1))  # type: ignore[arg-type]
    due = flusher.flush(snapshot("u"))
    # Its one payment attempt was declined (100 %); tax came from the fallback for one of two
    # quotes, shipping from the flat rate for its one quote. All in the breach window at T0.
    assert [(b.name, b.dimension) for b in due] == [
        ("payment_failure_rate_high", "all"),
        ("fallback_usage_high", "shipping"),
        ("fallback_usage_high", "tax"),
    ]
    for breach in due:
        flusher.sent(breach)
    assert flusher.flush(snapshot("u")) == []
    assert len(store.alerts) == 3
