"""One engine worker process for benchmarks: `python -m bench.worker ROLE BOOTSTRAP LATENCY_MS
INSTANCE`. Real runtime and orchestrator; adapters from bench.services."""

from __future__ import annotations

import logging
import sys

from bench.services import bench_services
from infra.bootstrap import build_processor
from infra.settings import Settings, load_settings


def main(argv: list[str]) -> None:
    role, bootstrap, latency_ms, instance = argv[:4]
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Only these pass through from the bench's environment: the workers run on bench adapters.
    given = load_settings()
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_isolation_level=given.kafka_isolation_level,
        kafka_fetch_wait_ms=given.kafka_fetch_wait_ms,
        partitions=given.partitions,
        processor_batch_size=given.processor_batch_size,
    )
    services = bench_services(int(latency_ms) / 1000)
    processor = build_processor(role, settings, services=services, instance_id=instance)
    processor.install_signal_handlers()
    processor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
