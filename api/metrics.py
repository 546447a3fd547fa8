"""Prometheus metrics in a registry owned by one app (two apps in one process — tests — never
collide, and /metrics shows exactly this app's series)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

# A provider retrying for hours (PayPal: 3 days) lands in the top buckets, not off the scale.
WEBHOOK_DELAY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    checkouts: Counter
    webhook_delay: Histogram

    def webhook_received(self, provider: str, payload: bytes, now_s: float) -> None:
        """How late a provider delivered an event we recorded (its own `created` stamp to
        now); an event without a readable stamp is not observed."""
        created = event_created_s(payload)
        if created is not None:
            self.webhook_delay.labels(provider).observe(max(0.0, now_s - created))


def event_created_s(payload: bytes) -> float | None:
    """When the provider created the event: Stripe `created` and Razorpay `created_at` (epoch
    seconds), PayPal `create_time` (RFC 3339)."""
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    for key in ("created", "created_at"):
        value = event.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    stamp = event.get("create_time")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


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
        webhook_delay=Histogram(
            "api_webhook_delay_seconds",
            "Provider event creation to its webhook being recorded, by provider",
            ("provider",),
            buckets=WEBHOOK_DELAY_BUCKETS,
            registry=registry,
        ),
    )
