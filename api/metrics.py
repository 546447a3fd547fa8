"""Prometheus metrics in a registry owned by one app (two apps in one process — tests — never
collide, and /metrics shows exactly this app's series)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    checkouts: Counter


def new_metrics() -> ApiMetrics:
    registry = CollectorRegistry(auto_describe=True)
    return ApiMetrics(
        registry=registry,
        # Labelled by route *template* (/v1/checkouts/{checkout_id}), never the raw path: raw
        # paths would create one series per checkout.
        requests=Counter(
            "api_requests_total",
            "HTTP requests by route template, method and status",
            ("method", "route", "status"),
            registry=registry,
        ),
        latency=Histogram(
            "api_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ("method", "route", "status"),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        ),
        checkouts=Counter(
            "api_checkout_outcomes_total",
            "POST /v1/checkouts outcomes: accepted, replayed, conflict, in_progress,"
            " invalid, rejected, broker_unavailable",
            ("outcome",),
            registry=registry,
        ),
    )
