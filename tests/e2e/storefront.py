"""The engine a storefront talks to, for e2e tests that follow a storefront through our API only:
Kafka, PostgreSQL, Redis, the real payment adapter, orchestrator, projector and API (in-process
TestClient) on the module's own database; inventory/tax/shipping are scripted."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import create_api_key
from events.serde import make_serde
from infra.adapters_wiring import payment_service
from infra.api_wiring import build_api_deps
from infra.bootstrap import build_processor
from infra.embedded.stack import RunningStack
from infra.settings import Settings
from infra.topics import ensure_topics
from projections.projector import Projector, ProjectorConfig
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


@dataclasses.dataclass
class Storefront:
    client: TestClient
    settings: Settings
    database_url: str
    shop_key: str
    other_key: str
    tenant: str

    def get(self, checkout_id: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.shop_key}"}
        return self.client.get(f"/v1/checkouts/{checkout_id}", headers=headers)

    def start(self, body: dict[str, Any]) -> str:
        r = self.client.post(
            "/v1/checkouts",
            json=body,
            headers={
                "Authorization": f"Bearer {self.shop_key}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
        assert r.status_code == 202, r.text
        return str(r.json()["checkout_id"])

    def status(self, checkout_id: str) -> dict[str, Any]:
        r = self.get(checkout_id)
        assert r.status_code == 200, r.text
        return dict(r.json())


@contextmanager
def own_database(stack: RunningStack, prefix: str) -> Iterator[str]:
    """A database of its own: the adapters, the projector and the API share it."""
    admin_url = stack.settings.database_url
    assert admin_url
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def storefront_engine(
    settings: Settings, database: str, *, before_start: Callable[[str], None] = lambda _: None
) -> Iterator[Storefront]:
    """`before_start(tenant)` runs once the schema is at head and before the payment adapter
    is built (e.g. to register the tenant's payment provider)."""
    settings = dataclasses.replace(settings, database_url=database)
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    suffix = uuid.uuid4().hex[:6]
    tenant = f"shop-{suffix}"
    deps = build_api_deps(settings)  # brings the schema to head
    before_start(tenant)
    services = {**ScriptedWorld().services(), "payment": payment_service(settings)}
    processors = [
        build_processor(role, settings, services=services, instance_id=suffix)
        for role in ("inventory", "tax", "shipping", "payment", "notification", "orchestrator")
    ]
    projector = Projector(
        ProjectorConfig(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database_url=database,
            group=f"projector-sf-{suffix}",
            poll_timeout_s=0.05,
            session_timeout_ms=settings.session_timeout_ms,
            isolation_level=settings.kafka_isolation_level,
        ),
        make_serde(None),
    )
    projector_thread = threading.Thread(target=projector.run, name="projector", daemon=True)
    with psycopg.connect(database, autocommit=True) as conn:
        shop_key = create_api_key(conn, tenant, "e2e")
        other_key = create_api_key(conn, f"other-{suffix}", "e2e")
    with running(*processors):
        projector_thread.start()
        try:
            with TestClient(create_app(deps)) as client:
                yield Storefront(client, settings, database, shop_key, other_key, tenant)
        finally:
            projector.stop()
            projector_thread.join(30)


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    last = fetch()
    while not done(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"not done before the deadline; last: {last}")
        time.sleep(0.1)
        last = fetch()
    return last


def stored_secret(sf: Storefront, checkout_id: str) -> str | None:
    with psycopg.connect(sf.database_url) as conn:
        row = conn.execute(
            "SELECT next_action_client_secret FROM projections.checkouts WHERE checkout_id = %s",
            (checkout_id,),
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
