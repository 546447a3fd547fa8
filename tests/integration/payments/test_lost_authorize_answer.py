"""A create whose answer is lost on the way back (the fault proxy forwards it to localstripe and
hangs the connection), then the saga's retry with the next attempt on a restarted worker: still
exactly one PaymentIntent, found through our attempt log and the idempotency key, never by
listing the account."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import requests
import stripe

from adapters.payments.attempt_log import Outcome, PostgresAttemptLog
from adapters.payments.port import AuthorizationRequest, Authorized, UnknownOutcomeError
from adapters.payments.stripe_gateway import StripeGateway
from infra.embedded.localstripe import LocalStripe
from tests.fault_proxy import HANG, PASS, FaultProxy
from tests.integration.payments.localstripe_peer import running_localstripe

pytestmark = pytest.mark.integration


class CountingSession(requests.Session):
    """Counts what the gateway sends, by method and path, and the keys of its creates."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[tuple[str, str]] = Counter()
        self.create_keys: list[str] = []

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        path = urlsplit(str(url)).path
        self.sent[(str(method).upper(), path)] += 1
        if str(method).upper() == "POST" and path == "/v1/payment_intents":
            self.create_keys.append((kwargs.get("headers") or {}).get("Idempotency-Key", ""))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def peer() -> Iterator[LocalStripe]:
    with running_localstripe() as running:
        yield running


def auth(checkout_id: str, attempt: int) -> AuthorizationRequest:
    return AuthorizationRequest(
        checkout_id, attempt, f"{checkout_id}:authorize_payment:{attempt}", "pm_card_visa",
        "cus_1", 2500, "EUR",
    )  # fmt: skip


def intents_of(peer: LocalStripe, checkout_id: str) -> list[str]:
    found: list[str] = []
    params = {"limit": "100"}
    while True:
        page = httpx.get(
            f"{peer.url}/v1/payment_intents",
            params=params,
            headers={"Authorization": f"Bearer {peer.api_key}"},
            timeout=10,
        ).json()
        found += [p["id"] for p in page["data"] if p["metadata"].get("checkout_id") == checkout_id]
        if not page["has_more"]:
            return found
        params["starting_after"] = page["data"][-1]["id"]


def test_lost_create_answer_then_next_attempt_makes_one_intent_without_listing(
    peer: LocalStripe, migrated_database_url: str
) -> None:
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    attempts = PostgresAttemptLog(lambda: psycopg.connect(migrated_database_url))
    with FaultProxy(peer.url) as proxy:

        def worker(session: CountingSession) -> StripeGateway:
            return StripeGateway(
                peer.api_key,
                api_base=proxy.url,
                http_client=stripe.RequestsClient(timeout=2, session=session),
                attempts=attempts,
            )

        first_session = CountingSession()
        proxy.mode = HANG  # writes reach localstripe; their answers never come back
        with pytest.raises(UnknownOutcomeError):
            worker(first_session).authorize(auth(checkout_id, 1))
        assert proxy.served[HANG] == 2  # the create and its immediate re-send under its key
        [row] = attempts.attempts("stripe", checkout_id)
        assert (row.outcome, row.payment_id) == (Outcome.PENDING, None)
        made = intents_of(peer, checkout_id)
        assert len(made) == 1  # the first create took effect; the re-send was replayed

        proxy.mode = PASS
        proxy.healed.set()  # hung connections end without an answer
        retry_session = CountingSession()
        result = worker(retry_session).authorize(auth(checkout_id, 2))  # a restarted worker

    assert result == Authorized(made[0], 2500, "eur")
    assert intents_of(peer, checkout_id) == made
    # Settled by re-sending attempt 1 (replayed by the key) and one read of its intent.
    assert retry_session.create_keys == [f"{checkout_id}:authorize_payment:1"]
    assert retry_session.sent[("GET", "/v1/payment_intents")] == 0
    assert first_session.sent[("GET", "/v1/payment_intents")] == 0
    assert sum(retry_session.sent.values()) == 2
    assert [
        (r.attempt, r.outcome, r.payment_id) for r in attempts.attempts("stripe", checkout_id)
    ] == [(1, Outcome.AUTHORIZED, made[0])]
