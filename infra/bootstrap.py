"""Wiring: the one place where concrete pieces meet. Tests call it with fakes where they need.

`build_processor(role, settings, services=...)` returns a ready `Processor` for one worker role:
`orchestrator`, one of the adapters (inventory, tax, shipping, payment, notification), or
`notifier` (customer emails from orders.events / checkout.events), or `fulfilment` (buys the
shipping label for each OrderPlaced and publishes ShipmentCreated on orders.events).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from events.serde import Serde, make_serde
from events.topics import (
    ADAPTERS,
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    ORDERS_EVENTS,
    adapter_requests,
)
from infra.metrics import Metrics
from infra.pipelined import PipelinedProcessor
from infra.processor import Processor, ProcessorConfig
from infra.settings import Settings
from infra.workers.adapter import LANES, AdapterHandler
from infra.workers.orchestrator import OrchestratorHandler, tick

ROLES = ("orchestrator", *ADAPTERS, "notifier", "fulfilment")

# An adapter service: takes an adapter command, returns its reply (or None: nothing to say).
Service = Callable[[Any], Any]


def default_services(settings: Settings) -> dict[str, Service]:
    """The real adapters on whatever the settings point at (embedded or external)."""
    from infra.adapters_wiring import build_default_services

    return build_default_services(settings)


def build_processor(
    role: str,
    settings: Settings,
    *,
    serde: Serde | None = None,
    services: Mapping[str, Service] | None = None,
    instance_id: str = "0",
    batch_size: int | None = None,
    metrics: Metrics | None = None,
) -> Processor:
    """`metrics`: the process's registry (`saga worker` serves it on METRICS_PORT); without
    it the processor counts into a private one."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set")
    serde = serde or make_serde(settings.schema_registry_url)
    metrics = metrics if metrics is not None else Metrics()
    common: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "instance_id": instance_id,
        "batch_size": batch_size or settings.processor_batch_size,
        "max_attempts": settings.processor_max_attempts,
        "session_timeout_ms": settings.session_timeout_ms,
        "isolation_level": settings.kafka_isolation_level,
        "fetch_wait_ms": settings.kafka_fetch_wait_ms,
    }
    if role == "orchestrator":
        config = ProcessorConfig(
            name="orchestrator",
            topics=[CHECKOUT_COMMANDS, CHECKOUT_REPLIES],
            tick_topic=CHECKOUT_COMMANDS,
            tick_interval_ms=settings.tick_interval_ms,
            tick_factory=tick,
            **common,
        )
        handler = OrchestratorHandler(
            bootstrap, serde, isolation_level=settings.kafka_isolation_level, metrics=metrics
        )
        return Processor(config, handler, serde, metrics=metrics.processor(config.name))
    if role == "notifier":
        from infra.workers.notifier import notifier_handler

        config = ProcessorConfig(name="notifier", topics=[ORDERS_EVENTS, CHECKOUT_EVENTS], **common)
        return Processor(
            config, notifier_handler(settings), serde, metrics=metrics.processor(config.name)
        )
    if role == "fulfilment":
        from infra.workers.fulfilment import fulfilment_handler

        # checkout.events too: ShippingQuoted there says which service level was sold.
        config = ProcessorConfig(
            name="fulfilment", topics=[ORDERS_EVENTS, CHECKOUT_EVENTS], **common
        )
        return Processor(
            config, fulfilment_handler(settings), serde, metrics=metrics.processor(config.name)
        )
    chosen = services if services is not None else default_services(settings)
    if role not in chosen:
        raise ValueError(f"no service wired for adapter {role!r}")
    # Each call's reply is committed as the call ends (infra/pipelined.py): a batch would wait
    # for its slowest call. At most LANES records are fetched and not yet answered.
    adapter_batch = {**common, "batch_size": min(common["batch_size"], LANES)}
    config = ProcessorConfig(
        name=f"adapter-{role}", topics=[adapter_requests(role)], **adapter_batch
    )
    adapter = AdapterHandler(role, chosen[role], metrics=metrics)
    return PipelinedProcessor(
        config, adapter, serde, lanes=LANES, metrics=metrics.processor(config.name)
    )
