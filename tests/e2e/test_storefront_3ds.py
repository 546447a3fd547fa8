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

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import stripe

from infra.demo import tokenize
from infra.embedded.stack import RunningStack
from tests.e2e.storefront import (
    TERMINAL,
    Storefront,
    own_database,
    poll,
    stored_secret,
    storefront_engine,
)
from tests.unit.api.fakes import checkout_body

pytestmark = pytest.mark.integration
THREE_DS_CARD = "4000002500003155"


@pytest.fixture(scope="module")
def storefront(stack: RunningStack) -> Iterator[Storefront]:
    with (
        own_database(stack, "sf3ds") as database,
        storefront_engine(stack.settings, database) as sf,
    ):
        yield sf


def signed(payload: bytes, secret: str) -> str:
    t = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    return f"t={t},v1={signature}"


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
    checkout_id = sf.start(body)

    # 1. The storefront polls until the customer has something to do.
    waiting = poll(
        lambda: sf.status(checkout_id),
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
    done = poll(lambda: sf.status(checkout_id), lambda s: s["status"] in TERMINAL)
    assert done["status"] == "COMPLETED", done
    assert done["next_action"] is None
    assert secret not in json.dumps(done)
    assert stored_secret(sf, checkout_id) is None
    final = stripe_client.v1.payment_intents.retrieve(payment_id)
    assert final.status == "succeeded" and final.amount == done["amounts"]["total"]
    assert final.to_dict()["metadata"]["checkout_id"] == checkout_id
