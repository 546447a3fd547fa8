"""The chaos run's size and fault plan, chosen by SAGA_CHAOS_PROFILE (quick | long; default
quick, the one `make test` runs). Tests read the environment only here, through `parse`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

QUICK, LONG = "quick", "long"


@dataclass(frozen=True)
class Profile:
    name: str
    checkouts: int  # all of them, every kind (tests/chaos/test_chaos.py: KINDS)
    before_s: float  # the phases, by start time: no faults / faults / no faults again
    during_s: float
    after_s: float
    outage_s: float  # one full Stripe outage inside `during`: half 500s, half hung writes
    fault_rate: float  # per Stripe request during `during`: chance it meets a fault
    kills: int  # SIGKILLs of orchestrator and payment worker, alternating, inside `during`
    pg_kills: int  # rounds of pg_terminate_backend on every worker connection, inside `during`
    pg_restarts: int  # PostgreSQL stopped and started again on its data, inside `during`
    broker_kills: int  # the broker SIGKILLed and started again on its durable log
    contested_units: int  # the contested SKU's stock at the start (restocked once by as many)
    history_intents: int  # PaymentIntents the account holds before the run (long profile)
    quiesce_s: float  # after the last start: every saga terminal within this
    # The payment worker's SAGA_BATCH_SIZE (None: the default, which an adapter caps to its
    # lanes: infra/workers/adapter.py LANES, docs/chaos.md finding 7).
    payment_batch_size: int | None
    seed: int
    report_path: str | None  # also write the report there (SAGA_CHAOS_REPORT)

    @property
    def total_s(self) -> float:
        return self.before_s + self.during_s + self.after_s

    @property
    def rate_per_s(self) -> float:
        """Starts per second, evenly spaced and the same before, during and after the faults."""
        return self.checkouts / self.total_s


_QUICK = Profile(
    name=QUICK,
    checkouts=216,
    before_s=20.0,
    during_s=64.0,
    after_s=24.0,
    outage_s=10.0,
    fault_rate=0.2,
    kills=2,
    pg_kills=4,
    pg_restarts=1,
    broker_kills=1,  # docs/chaos.md, finding 4
    contested_units=12,
    history_intents=0,
    quiesce_s=100.0,
    payment_batch_size=None,
    seed=14,
    report_path=None,
)

_LONG = Profile(
    name=LONG,
    checkouts=10_000,
    # 4.2 starts/s for 40 min: every fault below lands on a few hundred checkouts in flight.
    before_s=300.0,
    during_s=1500.0,
    after_s=600.0,
    outage_s=30.0,
    fault_rate=0.2,
    kills=40,
    pg_kills=40,
    pg_restarts=5,
    broker_kills=5,
    contested_units=200,
    history_intents=10_000,
    quiesce_s=900.0,
    payment_batch_size=None,
    seed=14,
    report_path=None,
)


def parse(environ: Mapping[str, str]) -> Profile:
    """SAGA_CHAOS_PROFILE picks the plan; SAGA_CHAOS_SEED and SAGA_CHAOS_REPORT adjust it."""
    name = environ.get("SAGA_CHAOS_PROFILE", QUICK).strip().lower() or QUICK
    if name not in (QUICK, LONG):
        raise ValueError(f"SAGA_CHAOS_PROFILE={name!r}: expected {QUICK} or {LONG}")
    chosen = _QUICK if name == QUICK else _LONG
    seed = environ.get("SAGA_CHAOS_SEED", "").strip()
    report = environ.get("SAGA_CHAOS_REPORT", "").strip() or None
    return dataclasses.replace(chosen, seed=int(seed) if seed else chosen.seed, report_path=report)
