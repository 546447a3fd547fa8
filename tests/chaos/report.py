"""The chaos run's report: what ran, what was injected, each invariant with its figures."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Report:
    profile: str
    seed: int
    checkouts: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, outcome)
    fail_reasons: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    # (phase, checkouts started in it, terminal per second in it, p50 s, p99 s)
    phases: list[tuple[str, int, float, float, float]] = field(default_factory=list)
    quiesce_s: float = math.nan
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, passed: bool, figures: str) -> None:
        self.checks.append((name, passed, figures))

    def failed(self) -> list[str]:
        return [f"{name}: {figures}" for name, passed, figures in self.checks if not passed]

    def render(self) -> str:
        lines = [
            f"# Chaos report: profile {self.profile}, seed {self.seed}",
            "",
            f"checkouts: {self.checkouts}",
            "",
            "| kind | outcome | checkouts |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {o} | {n} |" for (k, o), n in sorted(self.outcomes.items())]
        if self.fail_reasons:
            lines += ["", "| failure (step: reason) | checkouts |", "|---|---|"]
            lines += [f"| {r} | {n} |" for r, n in self.fail_reasons.most_common()]
        lines += ["", "| fault injected | count |", "|---|---|"]
        lines += [f"| {f} | {n} |" for f, n in sorted(self.faults.items())]
        lines += [
            "",
            "| phase | started | terminal/s | p50 s | p99 s |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {n} | {tput:.2f} | {p50:.2f} | {p99:.2f} |"
            for name, n, tput, p50, p99 in self.phases
        ]
        lines += ["", f"time to quiesce after the faults stopped: {self.quiesce_s:.1f} s", ""]
        lines += ["| invariant | result | figures |", "|---|---|---|"]
        lines += [
            f"| {name} | {'PASS' if ok else 'FAIL'} | {figures.replace('|', '/')} |"
            for name, ok, figures in self.checks
        ]
        lines += ["", *(f"- {n}" for n in self.notes), ""]
        return "\n".join(lines)
