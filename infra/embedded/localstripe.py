"""Stripe: the localstripe emulator (stateful Stripe API with signed webhooks) as a subprocess,
served on 127.0.0.1 by our launcher (localstripe's own CLI binds every interface)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.embedded.process import ServiceError, free_port, port_open, spawn, stop, wait_until


@dataclass
class LocalStripe:
    workdir: Path
    port: int = field(default_factory=free_port)
    # The stack's generated key and webhook signing secret (infra/embedded/secrets.py).
    api_key: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    name: str = "stripe"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not self.api_key.startswith("sk_"):
            raise ServiceError("stripe: the embedded localstripe needs an sk_ API key")
        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"stripe: port {self.port} already in use")
        log = self.workdir / "localstripe.log"
        self._proc = spawn(
            [
                sys.executable,
                "-m",
                "infra.embedded.localstripe_server",
                "--port",
                str(self.port),
                "--from-scratch",
            ],
            log=log,
        )
        wait_until(self.healthy, timeout=20, what="localstripe", proc=self._proc, log=log)

    def healthy(self) -> bool:
        import httpx

        # Any HTTP answer below 500 proves the API is serving.
        response = httpx.get(
            f"{self.url}/v1/customers",
            timeout=1,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        return response.status_code < 500

    def register_webhook(self, url: str) -> None:
        """Have localstripe sign and send its events to `url` with the stack's secret."""
        register_webhook(self.url, url, self.webhook_secret)

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None


def register_webhook(
    stripe_base: str,
    url: str,
    secret: str,
    endpoint_id: str = "saga",
    events: Sequence[str] | None = None,
) -> None:
    """localstripe's `/_config/webhooks/{id}`: events (all, or those named) signed with
    `secret` go to `url`. Registering the same id again replaces the endpoint."""
    import httpx

    data = {"url": url, "secret": secret}
    data.update({f"events[{i}]": name for i, name in enumerate(events or ())})
    response = httpx.post(f"{stripe_base}/_config/webhooks/{endpoint_id}", data=data, timeout=5)
    if response.status_code != 200:
        raise ServiceError(f"stripe: registering the webhook failed: HTTP {response.status_code}")
