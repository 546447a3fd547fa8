"""One engine worker process for benchmarks: `python -m bench.worker ROLE BOOTSTRAP LATENCY_MS
INSTANCE`. Real runtime and orchestrator; adapters from bench.services."""

from __future__ import annotations

import logging
import os
import sys

from bench.services import bench_services
from infra.bootstrap import build_processor
from infra.settings import load_settings


def main(argv: list[str]) -> None:
    role, bootstrap, latency_ms, instance = argv[:4]
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    passed = ("KAFKA_ISOLATION_LEVEL", "SAGA_PARTITIONS", "SAGA_BATCH_SIZE")
    settings = load_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            **{k: os.environ[k] for k in passed if k in os.environ},
        }
    )
    services = bench_services(int(latency_ms) / 1000)
    processor = build_processor(role, settings, services=services, instance_id=instance)
    processor.install_signal_handlers()
    processor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
