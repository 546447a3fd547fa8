"""The embedded stack: starts each service the environment does not already point at.

Used by `saga up`, `saga demo`, and the test session fixtures. Started in order, stopped in
reverse, and everything started so far is stopped again if a later service fails to start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from infra.embedded.localstripe import LocalStripe
from infra.embedded.postgres import PostgresServer
from infra.embedded.redis import RedisServer
from infra.embedded.smtp import SmtpInbox
from infra.embedded.tansu import ISOLATION_LEVEL as TANSU_ISOLATION_LEVEL
from infra.embedded.tansu import TansuBroker
from infra.settings import Settings


class EmbeddedService(Protocol):
    name: str

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def healthy(self) -> bool: ...

    def stop(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class RunningStack:
    settings: Settings  # with every service URL filled in
    started: tuple[str, ...]  # names of the services this stack runs itself
    workdir: Path

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {
            "kafka": s.kafka_bootstrap_servers or "",
            "postgres": s.database_url or "",
            "redis": s.redis_url or "",
            "stripe": s.stripe_api_base or "",
            "smtp": s.smtp_url or "",
        }


# service name -> (Settings field it fills, factory)
_SERVICES: dict[str, tuple[str, type]] = {
    "kafka": ("kafka_bootstrap_servers", TansuBroker),
    "postgres": ("database_url", PostgresServer),
    "redis": ("redis_url", RedisServer),
    "stripe": ("stripe_api_base", LocalStripe),
    "smtp": ("smtp_url", SmtpInbox),
}


@contextlib.contextmanager
def embedded_stack(
    settings: Settings,
    *,
    only: tuple[str, ...] | None = None,
    workdir: Path | None = None,
    ports: dict[str, int] | None = None,
) -> Iterator[RunningStack]:
    """Run the services `settings` leaves unset (all of them, or those in `only`)."""
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="saga-stack-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # the Postgres service user must traverse it
    filled: dict[str, str] = {}
    started: list[str] = []
    with contextlib.ExitStack() as stack:
        if own_dir:
            stack.callback(shutil.rmtree, root, ignore_errors=True)
        for name, (field, factory) in _SERVICES.items():
            if getattr(settings, field) or (only is not None and name not in only):
                continue
            kwargs = {"port": ports[name]} if ports and name in ports else {}
            service = factory(workdir=root / name, **kwargs)
            (root / name).mkdir(exist_ok=True)
            stack.callback(service.stop)
            service.start()
            filled[field] = service.url
            if name == "kafka":
                filled["kafka_isolation_level"] = TANSU_ISOLATION_LEVEL
            started.append(name)
        filled_settings = dataclasses.replace(settings, **filled)  # type: ignore[arg-type]
        yield RunningStack(filled_settings, tuple(started), root)
