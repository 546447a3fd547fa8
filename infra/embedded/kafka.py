"""Apache Kafka 4.x, single node in KRaft mode (broker + controller in one JVM), on loopback.

Storage is formatted by us on first start and reused after: a durable data directory keeps
every topic, offset and transaction across restarts. Sized for a 2-core, 24 GiB machine.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.kafka_runtime import find_java, kafka_classpath
from infra.embedded.process import (
    ServiceError,
    free_port,
    port_open,
    run_tool,
    spawn,
    stop,
    wait_until,
)

ISOLATION_LEVEL = "read_committed"
_NODE_ID = 1

_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
"""

_JVM_OPTS = [
    # A small, steady heap and few threads: the broker shares two cores with the engine.
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:CICompilerCount=2",
    "-Djava.awt.headless=true",
]


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaBroker:
    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    name: str = "kafka"
    java_home: str | None = None  # Settings.java_home: tried before PATH's java
    startup_seconds: float | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": _NODE_ID,
            "controller.quorum.voters": f"{_NODE_ID}@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics are created by `saga topics ensure` with their retention, never by a typo.
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            # A single node has nobody to wait for before the first rebalance.
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "background.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "num.replica.fetchers": 1,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _format(self, java: str, classpath: str, config: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return  # formatted on an earlier start: keep every record
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_tool(
            [
                java,
                "-cp",
                classpath,
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                _cluster_id(),
                "--config",
                str(config),
                "--ignore-formatted",
            ],
            failure="kafka: formatting the KRaft storage failed",
        )

    def start(self) -> None:
        began = time.monotonic()
        for port in (self.port, self.controller_port):
            if port_open("127.0.0.1", port):
                raise ServiceError(f"kafka: port {port} already in use")
        java = find_java(self.java_home)
        classpath = os.pathsep.join(str(p) for p in kafka_classpath())
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "server.properties"
        config.write_text(self._properties())
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        (self.workdir / "ports.json").write_text(
            json.dumps({"port": self.port, "controller_port": self.controller_port})
        )
        self._format(java, classpath, config)
        log = self.workdir / "kafka.log"
        self._proc = spawn(
            [
                java,
                *_JVM_OPTS,
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            log=log,
        )
        wait_until(self.healthy, timeout=90, what="kafka (apache)", proc=self._proc, log=log)
        self.startup_seconds = time.monotonic() - began

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.url, "log_level": 0})
        metadata = admin.list_topics(timeout=1)
        # The broker answers metadata before it is unfenced; it is ready once it lists itself.
        return _NODE_ID in metadata.brokers

    def stop(self) -> None:
        # SIGTERM = controlled shutdown: logs are flushed and closed cleanly for the next start.
        stop(self._proc, sig=signal.SIGTERM, grace=30)
        self._proc = None
