"""From the windowed tables' contents to PostgreSQL rows and due alerts (no faust here).

The runtime hands over a snapshot of the windows that took facts since the last flush (all of
them after a start or a rebalance): ((partition key, (start s, end s)), facts) pairs, as faust's
windowed tables store them. Each window's rows are recomputed from its facts and written when
they differ from what this process last wrote; after a start everything is written once (the
upsert leaves equal rows untouched), so state recovered from the changelog reaches PostgreSQL
even if no new event touches it. Alerts are judged on whole breach windows (the runtime passes
every minute of a breach window that any new minute belongs to).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics.alerts import Breach, Thresholds, breach_window, breaches
from analytics.facts import State, merge
from analytics.metrics import Rows, rows
from analytics.store import MetricsStore
from analytics.windows import MINUTELY, SPECS, WindowSpec

log = logging.getLogger(__name__)

TableItems = Iterable[tuple[Any, State]]
Windows = dict[tuple[int, int], State]


def by_window(items: TableItems, spec: WindowSpec) -> Windows:
    """(start ms, end ms) -> the union of every partition's facts for that window."""
    grouped: dict[tuple[int, int], list[State]] = {}
    for (_partition, (start_s, _end_s)), state in items:
        start = round(float(start_s)) * 1000
        grouped.setdefault((start, start + spec.size_ms), []).append(state)
    return {window: merge(states) for window, states in grouped.items()}


@dataclass
class Flusher:
    store: MetricsStore
    thresholds: Thresholds
    _written: dict[str, dict[tuple[int, int], Rows]] = field(default_factory=dict)
    _sent: set[str] | None = None
    live: dict[str, dict[tuple[int, int], Rows]] = field(default_factory=dict)
    flushes: int = 0  # completed flushes: how a test knows one ran after its events

    def flush(self, snapshot: Mapping[str, TableItems]) -> list[Breach]:
        """Write changed windows; return the breaches not yet sent (oldest first)."""
        minutely: Windows = {}
        for spec in SPECS:
            windows = by_window(snapshot.get(spec.name, ()), spec)
            if spec is MINUTELY:
                minutely = windows
            current = {window: rows(state) for window, state in windows.items()}
            written = self._written.setdefault(spec.name, {})
            changed = {w: r for w, r in current.items() if written.get(w) != r}
            if changed:
                n = self.store.upsert(spec.name, changed)
                log.debug("flushed %d windows of %s (%d rows changed)", len(changed), spec.name, n)
                written.update(changed)
            self.live.setdefault(spec.name, {}).update(current)
        due = self._due(minutely)
        self.flushes += 1
        return due

    def forget(self, table: str, window: tuple[int, int]) -> None:
        """`window` left the tables (retention): its rows stay in PostgreSQL, not in memory."""
        self._written.get(table, {}).pop(window, None)
        self.live.get(table, {}).pop(window, None)

    def _due(self, minutely: Windows) -> list[Breach]:
        if self._sent is None:
            self._sent = self.store.sent_alert_ids()
        grouped: dict[int, list[State]] = {}
        for (start, _end), state in minutely.items():
            grouped.setdefault(breach_window(start), []).append(state)
        due = [
            breach
            for start, states in sorted(grouped.items())
            for breach in breaches(merge(states), start, self.thresholds)
            if breach.alert_id not in self._sent
        ]
        return due

    def sent(self, breach: Breach) -> None:
        """`breach` reached ops.alerts: record it so no restart sends it again."""
        self.store.record_alert(breach)
        if self._sent is not None:
            self._sent.add(breach.alert_id)
