"""Projector metrics, registered on a registry the caller passes in (no import-time globals:
tests and replays build their own registries, the worker passes the process-wide one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ProjectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["projection", "topic", "partition"]
        self.lag = Gauge(
            "projection_lag_records",
            "Records in the partition not yet applied (end offset - applied next offset)",
            labels,
            registry=registry,
        )
        self.applied_offset = Gauge(
            "projection_applied_offset",
            "Next offset to apply, as committed to PostgreSQL",
            labels,
            registry=registry,
        )
        self.events = Counter(
            "projection_events_total",
            "Records handled, by outcome (applied, duplicate, parked, unparked, undecodable)",
            ["projection", "outcome"],
            registry=registry,
        )
        self.batches = Counter(
            "projection_batches_total",
            "PostgreSQL transactions committed by the projector",
            ["projection"],
            registry=registry,
        )
        self.reseeks = Counter(
            "projection_reseeks_total",
            "Times the stored offset differed from the consumer position (another instance, "
            "a replay swap) and the projector re-sought",
            ["projection"],
            registry=registry,
        )
        self.parked = Gauge(
            "projection_parked_events",
            "Events waiting in projection_parked_events",
            ["projection"],
            registry=registry,
        )
