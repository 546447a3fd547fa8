"""Wiring: the one place where concrete pieces meet. Tests call it with fakes where they need.

`build_processor(role, settings, services=...)` returns a ready `Processor` for one worker role:
`orchestrator`, one of the adapters (inventory, tax, shipping, payment, notification), `adapters`
(inventory, tax, shipping and payment in one worker), or
`notifier` (customer emails from orders.events / checkout.events), or `fulfilment` (buys the
shipping label for each OrderPlaced and publishes ShipmentCreated on orders.events).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from events.serde import Serde, make_serde
from events.topics import (
    ADAPTERS,
    ADAPTERS_GROUP,
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    ORDERS_EVENTS,
    SAGA_ADAPTERS,
    adapter_group,
    adapter_requests,
)
from infra.metrics import Metrics
from infra.pipelined import PipelinedProcessor
from infra.processor import Handler, Processor, ProcessorConfig
from infra.settings import Settings
from infra.workers.adapter import LANES, AdapterHandler, AdaptersHandler
from infra.workers.orchestrator import OrchestratorHandler, tick

# One worker for the adapters the saga calls, or one per adapter (scale one out on its own).
ADAPTERS_ROLE = ADAPTERS_GROUP
ROLES = ("orchestrator", *ADAPTERS, ADAPTERS_ROLE, "notifier", "fulfilment")

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
    served = SAGA_ADAPTERS if role == ADAPTERS_ROLE else (role,)
    for name in served:
        if name not in chosen:
            raise ValueError(f"no service wired for adapter {name!r}")
    handlers = {
        adapter_requests(name): AdapterHandler(name, chosen[name], metrics=metrics)
        for name in served
    }
    # A partition starts where the other way of running these adapters stopped, so switching
    # between them asks no provider again what was answered (infra/handover.py).
    adapter: Handler
    if role == ADAPTERS_ROLE:
        group, adapter, lanes = ADAPTERS_GROUP, AdaptersHandler(handlers), LANES * len(served)
        handover = tuple(adapter_group(a) for a in served)
    else:
        group, adapter, lanes = adapter_group(role), handlers[adapter_requests(role)], LANES
        handover = (ADAPTERS_GROUP,) if role in SAGA_ADAPTERS else ()
    # Each call's reply is committed as the call ends (infra/pipelined.py): a batch would wait
    # for its slowest call. At most `lanes` records are fetched and not yet answered.
    adapter_batch = {**common, "batch_size": min(common["batch_size"], lanes)}
    config = ProcessorConfig(
        name=group, topics=list(handlers), handover_groups=handover, **adapter_batch
    )
    return PipelinedProcessor(
        config,
        adapter,
        serde,
        lanes=lanes,
        topic_lanes=LANES if len(served) > 1 else None,
        metrics=metrics.processor(config.name),
    )
