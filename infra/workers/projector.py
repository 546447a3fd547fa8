"""`saga worker --role projector`: the projector until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

from events.serde import make_serde
from infra.metrics import add_process_collectors
from infra.processor import consumer_config
from infra.settings import Settings
from projections.metrics import ProjectorMetrics
from projections.projector import Projector, ProjectorConfig

log = logging.getLogger(__name__)


def build_projector(
    settings: Settings, registry: CollectorRegistry | None = None, **overrides: object
) -> Projector:
    if not settings.kafka_bootstrap_servers or not settings.database_url:
        raise ValueError("the projector needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    config = ProjectorConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        database_url=settings.database_url,
        batch_size=settings.processor_batch_size,
        session_timeout_ms=settings.session_timeout_ms,
        isolation_level=settings.kafka_isolation_level,
    )
    config.client_config = consumer_config(
        settings.kafka_bootstrap_servers,
        config.group,
        settings.session_timeout_ms,
        settings.kafka_isolation_level,
        settings.kafka_fetch_wait_ms,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    metrics = ProjectorMetrics(registry) if registry is not None else None
    return Projector(config, make_serde(settings.schema_registry_url), metrics)


def run_projector(settings: Settings) -> None:
    """Migrates the live schema, then applies until a signal; metrics on METRICS_PORT (or the
    older SAGA_PROJECTOR_METRICS_PORT) when set, like every worker."""
    registry = CollectorRegistry()
    add_process_collectors(registry)
    projector = build_projector(settings, registry)
    port = (
        settings.metrics_port
        if settings.metrics_port is not None
        else (settings.projector_metrics_port)
    )
    if port is not None:
        server, _ = start_http_server(port, addr=settings.metrics_host, registry=registry)
        url = f"http://{settings.metrics_host}:{server.server_port}/metrics"
        log.info("projector metrics on %s", url, extra={"metrics_url": url})
    projector.install_signal_handlers()
    projector.run()
