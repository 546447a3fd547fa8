"""Stripe: the localstripe emulator (stateful Stripe API with signed webhooks) as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.process import ServiceError, free_port, port_open, spawn, stop, wait_until


@dataclass
class LocalStripe:
    workdir: Path
    port: int = field(default_factory=free_port)
    name: str = "stripe"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"stripe: port {self.port} already in use")
        log = self.workdir / "localstripe.log"
        self._proc = spawn(
            [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"],
            log=log,
        )
        wait_until(self.healthy, timeout=20, what="localstripe", proc=self._proc, log=log)

    def healthy(self) -> bool:
        import httpx

        # Any HTTP answer proves the API is serving; 401 without a key is the expected reply.
        response = httpx.get(
            f"{self.url}/v1/customers",
            timeout=1,
            headers={"Authorization": "Bearer sk_test_embedded"},
        )
        return response.status_code < 500

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None
