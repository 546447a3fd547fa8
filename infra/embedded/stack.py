"""The embedded stack: starts each service the environment does not already point at.

Used by `saga up`, `saga demo`, and the test session fixtures. Started in order, stopped in
reverse, and everything started so far is stopped again if a later service fails to start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from infra.embedded.kafka import ISOLATION_LEVEL as KAFKA_ISOLATION_LEVEL
from infra.embedded.kafka import KafkaBroker
from infra.embedded.localstripe import LocalStripe
from infra.embedded.postgres import PostgresServer
from infra.embedded.redis import RedisServer
from infra.embedded.secrets import for_directory
from infra.embedded.smtp import SmtpInbox
from infra.embedded.tansu import FETCH_WAIT_MS as TANSU_FETCH_WAIT_MS
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
    pids: dict[str, int] = dataclasses.field(default_factory=dict)  # e.g. the broker's, for CPU
    # The services this stack runs, by name: for tests that stop and start one (chaos).
    services: dict[str, EmbeddedService] = dataclasses.field(default_factory=dict)

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {
            "kafka": s.kafka_bootstrap_servers or "",
            "postgres": s.database_url or "",
            "redis": s.redis_url or "",
            "stripe": s.stripe_api_base or "",
            "smtp": s.smtp_url or "",
        }


# The isolation level readers of each embedded broker use (Tansu: ADR 0009).
_BROKERS: dict[str, tuple[type, str]] = {
    "kafka": (KafkaBroker, KAFKA_ISOLATION_LEVEL),
    "tansu": (TansuBroker, TANSU_ISOLATION_LEVEL),
}

# service name -> (Settings field it fills, factory); "kafka" is chosen by SAGA_BROKER
_SERVICES: dict[str, tuple[str, type | None]] = {
    "kafka": ("kafka_bootstrap_servers", None),
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
    durable: bool = False,
) -> Iterator[RunningStack]:
    """Run the services `settings` leaves unset (all of them, or those in `only`).

    `durable` keeps state in `workdir` across runs: Kafka's log, PostgreSQL's cluster and Redis'
    append-only file, the ports each service had, so URLs stay the same across restarts, and
    the generated secrets, so tokens stay valid. Secrets the settings leave unset (JWT, Stripe
    webhook signing, localstripe's API key) are generated for the directory and handed to
    every service started here and to the returned settings.
    """
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="saga-stack-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # the Postgres service user must traverse it
    remembered = _remembered_ports(root) if durable else {}
    chosen = {**remembered, **(ports or {})}
    generated = for_directory(root, keep=durable)
    filled: dict[str, object] = {}
    if not settings.jwt_secret:
        filled["jwt_secret"] = generated.jwt_secret
    webhook_secrets = settings.stripe_webhook_secrets or (generated.stripe_webhook_secret,)
    filled["stripe_webhook_secrets"] = webhook_secrets
    started: list[str] = []
    pids: dict[str, int] = {}
    services: dict[str, EmbeddedService] = {}
    with contextlib.ExitStack() as stack:
        if own_dir:
            stack.callback(shutil.rmtree, root, ignore_errors=True)
        for name, (field, factory) in _SERVICES.items():
            if getattr(settings, field) or (only is not None and name not in only):
                continue
            kwargs: dict[str, object] = {"port": chosen[name]} if name in chosen else {}
            if name == "kafka":
                factory, isolation = _BROKERS[settings.embedded_broker]
                filled["kafka_isolation_level"] = isolation
                if factory is TansuBroker:  # its fetch waits end on the timer (ADR 0019)
                    filled["kafka_fetch_wait_ms"] = TANSU_FETCH_WAIT_MS
                if factory is KafkaBroker:
                    kwargs["java_home"] = settings.java_home
                    if "kafka_controller" in chosen:
                        kwargs["controller_port"] = chosen["kafka_controller"]
            if name == "redis":
                kwargs["durable"] = durable
            if name == "stripe":
                # Our localstripe: its key is ours to choose; a real Stripe brings its own.
                api_key = settings.stripe_api_key or generated.stripe_api_key
                filled["stripe_api_key"] = api_key
                kwargs["api_key"] = api_key
                kwargs["webhook_secret"] = webhook_secrets[0]
            assert factory is not None
            service = factory(workdir=root / name, **kwargs)
            (root / name).mkdir(exist_ok=True)
            stack.callback(service.stop)
            service.start()
            filled[field] = service.url
            started.append(name)
            services[name] = service
            proc = getattr(service, "_proc", None)
            if proc is not None:
                pids[name] = proc.pid
            chosen[name] = service.port
            if isinstance(service, KafkaBroker):
                chosen["kafka_controller"] = service.controller_port
                print(f"kafka: Apache Kafka (KRaft) ready in {service.startup_seconds:.1f}s")
        if durable:
            (root / "ports.json").write_text(json.dumps(chosen, indent=2, sort_keys=True))
        filled_settings = dataclasses.replace(settings, **filled)  # type: ignore[arg-type]
        yield RunningStack(filled_settings, tuple(started), root, pids, services)


def _remembered_ports(root: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads((root / "ports.json").read_text()).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def reader_isolation(settings: Settings) -> str:
    """The isolation level readers use with these settings: the embedded broker's own when the
    stack runs it (read_uncommitted only for Tansu, ADR 0009), else the configured one."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_isolation_level
    return _BROKERS[settings.embedded_broker][1]
