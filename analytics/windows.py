"""The two window shapes, in event time (epoch ms), and a pure fold of events into windows.

`window_starts` assigns a timestamp exactly as faust's Tumbling/HoppingWindow.ranges do (the
runtime lets faust's windowed tables do it; tests check the two agree). `fold` is the whole
aggregation without faust: what the runtime's tables hold after a stream, for unit tests and
for reasoning about replays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from analytics.facts import State, add, observe
from events.envelope import Envelope


@dataclass(frozen=True, slots=True)
class WindowSpec:
    name: str  # also the PostgreSQL table the windows are flushed to
    size_ms: int
    step_ms: int


MINUTELY = WindowSpec("checkout_metrics_minutely", 60_000, 60_000)
# Hopping: 15 minutes wide, a new one every 5, so a dashboard's "last 15 minutes" is at most
# 5 minutes stale and an event lands in 3 windows (not 15).
QUARTER_HOURLY = WindowSpec("checkout_metrics_quarter_hourly", 900_000, 300_000)
SPECS = (MINUTELY, QUARTER_HOURLY)


def window_starts(spec: WindowSpec, at_ms: int) -> list[int]:
    """Starts of every window of `spec` that contains `at_ms` (oldest first)."""
    latest = at_ms - at_ms % spec.step_ms
    first = latest - spec.size_ms + spec.step_ms
    return list(range(first, latest + 1, spec.step_ms))


def fold(envelopes: Iterable[Envelope[Any]]) -> dict[tuple[str, int], State]:
    """(spec name, window start) -> facts, for `envelopes` in log order."""
    windows: dict[tuple[str, int], State] = {}
    starts: dict[str, dict[str, int]] = {}
    for env in envelopes:
        seen = observe(env, starts.get(env.checkout_id, {}))
        if seen.start is not None:
            starts.setdefault(env.checkout_id, {})[seen.start[0]] = seen.start[1]
        if seen.forget_starts:
            starts.pop(env.checkout_id, None)
        if not seen.facts:
            continue
        for spec in SPECS:
            for start in window_starts(spec, env.occurred_at):
                key = (spec.name, start)
                windows[key] = add(windows.get(key), seen.facts)
    return windows
