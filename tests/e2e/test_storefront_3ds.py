"""3-D Secure finished the way a storefront does it, through our API only (docs/api.md):
POST /v1/checkouts -> poll GET until AWAITING_PAYMENT_ACTION -> hand `next_action.client_secret`
to Stripe.js (`handleNextAction`, played here by the call Stripe.js makes to the emulator with the
publishable key) -> Stripe's signed webhook to POST /v1/webhooks/stripe -> GET shows COMPLETED.

Real parts: Kafka, PostgreSQL, Redis, localstripe, the real payment adapter, orchestrator,
projector and API; inventory/tax/shipping are scripted. localstripe sends no webhook when 3-D
Secure completes on a manual-capture intent (real Stripe sends
`payment_intent.amount_capturable_updated`), so the test builds that event from the intent as the
emulator reports it and signs it with the endpoint secret, as Stripe would.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import stripe
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import create_api_key
from events.serde import make_serde
from infra.adapters_wiring import payment_service
from infra.api_wiring import build_api_deps
from infra.bootstrap import build_processor
from infra.demo import tokenize
from infra.embedded.stack import RunningStack
from infra.settings import Settings
from infra.topics import ensure_topics
from projections.projector import Projector, ProjectorConfig
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running
from tests.unit.api.fakes import checkout_body

pytestmark = pytest.mark.integration
THREE_DS_CARD = "4000002500003155"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


@dataclasses.dataclass
class Storefront:
    client: TestClient
    settings: Settings
    database_url: str
    shop_key: str
    other_key: str

    def get(self, checkout_id: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.shop_key}"}
        return self.client.get(f"/v1/checkouts/{checkout_id}", headers=headers)


@pytest.fixture(scope="module")
def database(stack: RunningStack) -> Iterator[str]:
    """The module's own database: the adapters, the projector and the API share it."""
    admin_url = stack.settings.database_url
    assert admin_url
    name = f"sf3ds_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def storefront(stack: RunningStack, database: str) -> Iterator[Storefront]:
    settings = dataclasses.replace(stack.settings, database_url=database)
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    suffix = uuid.uuid4().hex[:6]
    deps = build_api_deps(settings)  # brings the schema to head
    services = {**ScriptedWorld().services(), "payment": payment_service(settings)}
    processors = [
        build_processor(role, settings, services=services, instance_id=suffix)
        for role in ("inventory", "tax", "shipping", "payment", "notification", "orchestrator")
    ]
    projector = Projector(
        ProjectorConfig(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database_url=database,
            group=f"projector-sf3ds-{suffix}",
            poll_timeout_s=0.05,
            session_timeout_ms=settings.session_timeout_ms,
            isolation_level=settings.kafka_isolation_level,
        ),
        make_serde(None),
    )
    projector_thread = threading.Thread(target=projector.run, name="projector", daemon=True)
    with psycopg.connect(database, autocommit=True) as conn:
        shop_key = create_api_key(conn, f"shop-{suffix}", "e2e")
        other_key = create_api_key(conn, f"other-{suffix}", "e2e")
    with running(*processors):
        projector_thread.start()
        try:
            with TestClient(create_app(deps)) as client:
                yield Storefront(client, settings, database, shop_key, other_key)
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


def status(sf: Storefront, checkout_id: str) -> dict[str, Any]:
    r = sf.get(checkout_id)
    assert r.status_code == 200, r.text
    return dict(r.json())


def signed(payload: bytes, secret: str) -> str:
    t = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    return f"t={t},v1={signature}"


def stored_secret(sf: Storefront, checkout_id: str) -> str | None:
    with psycopg.connect(sf.database_url) as conn:
        row = conn.execute(
            "SELECT next_action_client_secret FROM projections.checkouts WHERE checkout_id = %s",
            (checkout_id,),
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_storefront_finishes_3ds_with_the_client_secret_from_our_api(
    storefront: Storefront,
) -> None:
    sf = storefront
    settings = sf.settings
    assert settings.stripe_api_base and settings.stripe_api_key
    payment_method = tokenize(settings, THREE_DS_CARD)  # Stripe.js, in the customer's browser
    body = checkout_body(
        customer={"id": f"cus-{uuid.uuid4().hex[:8]}", "email": "buyer@example.com"},
        payment={"provider": "stripe", "payment_method": payment_method},
    )
    r = sf.client.post(
        "/v1/checkouts",
        json=body,
        headers={"Authorization": f"Bearer {sf.shop_key}", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 202, r.text
    checkout_id = r.json()["checkout_id"]

    # 1. The storefront polls until the customer has something to do.
    waiting = poll(
        lambda: status(sf, checkout_id),
        lambda s: s["status"] == "AWAITING_PAYMENT_ACTION" or s["status"] in TERMINAL,
    )
    assert waiting["status"] == "AWAITING_PAYMENT_ACTION", waiting
    action = waiting["next_action"]
    assert action["provider"] == "stripe" and action["kind"] == "use_stripe_sdk", action
    secret = action["client_secret"]
    assert isinstance(secret, str) and "_secret_" in secret
    payment_id = secret.split("_secret_")[0]  # Stripe's secret is "<intent id>_secret_<...>"
    assert payment_id.startswith("pi_")

    # 2. Another tenant learns nothing, not even that the checkout exists.
    foreign = sf.get(checkout_id, key=sf.other_key)
    assert foreign.status_code == 404 and secret not in foreign.text

    # 3. Stripe.js handleNextAction: the browser authenticates with the publishable key and the
    #    client secret only (no server key), as the emulator's 3-D Secure page expects.
    authenticated = httpx.post(
        f"{settings.stripe_api_base}/v1/payment_intents/{payment_id}/_authenticate",
        data={"key": "pk_test_storefront", "client_secret": secret, "success": "true"},
        timeout=10,
    )
    assert authenticated.status_code == 200, authenticated.text

    # 4. Stripe's webhook for the authorized intent, signed with our endpoint secret, to our API.
    stripe_client = stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base}
    )
    intent = stripe_client.v1.payment_intents.retrieve(payment_id)
    assert intent.status == "requires_capture"
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "created": int(time.time()),
        "data": {"object": intent.to_dict()},
    }
    payload = json.dumps(event).encode()
    header = signed(payload, settings.stripe_webhook_secrets[0])
    hook = sf.client.post(
        "/v1/webhooks/stripe", content=payload, headers={"Stripe-Signature": header}
    )
    assert hook.status_code == 200, hook.text

    # 5. COMPLETED, captured once in full, and the secret is gone from the API and the read model.
    done = poll(lambda: status(sf, checkout_id), lambda s: s["status"] in TERMINAL)
    assert done["status"] == "COMPLETED", done
    assert done["next_action"] is None
    assert secret not in json.dumps(done)
    assert stored_secret(sf, checkout_id) is None
    final = stripe_client.v1.payment_intents.retrieve(payment_id)
    assert final.status == "succeeded" and final.amount == done["amounts"]["total"]
    assert final.to_dict()["metadata"]["checkout_id"] == checkout_id
