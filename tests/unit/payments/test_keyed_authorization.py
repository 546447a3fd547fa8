"""StripeGateway's authorize decisions over Stripe's HTTP contract (a scripted HTTP client in the
SDK's slot): what it sends on the normal path, after a lost answer, for an old ambiguous attempt,
and what it reuses from its attempt log. Every request is counted: listing the account is the
thing authorize must not do."""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import stripe

from adapters.payments.attempt_log import InMemoryAttemptLog, Outcome
from adapters.payments.keyed import REPLAY_WINDOW_S
from adapters.payments.port import (
    AuthorizationRequest,
    Authorized,
    Declined,
    PermanentPaymentError,
    UnknownOutcomeError,
)
from adapters.payments.stripe_gateway import StripeGateway

LOST = "lost"  # the request was sent; its answer never came (a read timeout)
Answer = tuple[int, Mapping[str, Any], Mapping[str, str]]  # status, body, extra headers
API_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred."}}
EMPTY = {"object": "list", "data": [], "has_more": False, "url": "/v1/payment_intents"}


class ScriptedStripe(stripe.HTTPClient):
    name = "scripted"

    def __init__(self, *answers: tuple[int, Mapping[str, Any]] | Answer | str) -> None:
        super().__init__()
        self.answers = deque(answers)
        self.sent: list[tuple[str, str, str | None, dict[str, str]]] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        parts = urlsplit(url)
        params = dict(parse_qsl(post_data or parts.query))
        self.sent.append((method, parts.path, (headers or {}).get("Idempotency-Key"), params))
        answer = self.answers.popleft()
        if answer == LOST:
            raise stripe.APIConnectionError("read timed out")
        status, body, *extra = answer
        headers = {"Request-Id": f"req_{len(self.sent)}", **(extra[0] if extra else {})}
        return json.dumps(body), status, headers

    def close(self) -> None:
        pass

    def lists(self) -> int:
        return sum(1 for m, path, _, _ in self.sent if m == "get" and path == "/v1/payment_intents")


def intent(
    pid: str, request: AuthorizationRequest, status: str = "requires_capture"
) -> dict[str, Any]:
    return {
        "id": pid,
        "object": "payment_intent",
        "status": status,
        "amount": request.amount,
        "amount_capturable": request.amount if status == "requires_capture" else 0,
        "currency": request.currency.lower(),
        "created": 1_700_000_000,
        "metadata": {
            "checkout_id": request.checkout_id,
            "idempotency_key": request.idempotency_key,
        },
    }


def auth(checkout_id: str, attempt: int = 1, amount: int = 1000) -> AuthorizationRequest:
    return AuthorizationRequest(
        checkout_id=checkout_id,
        attempt=attempt,
        idempotency_key=f"{checkout_id}:authorize_payment:{attempt}",
        payment_method="pm_card_visa",
        customer_id="cus_1",
        amount=amount,
        currency="EUR",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def checkout_id() -> str:
    return f"co_{uuid.uuid4().hex[:12]}"


def gateway(http: ScriptedStripe, log: InMemoryAttemptLog, clock: Clock) -> StripeGateway:
    return StripeGateway(
        "sk_test_x", api_base="http://stripe.invalid", http_client=http, attempts=log, clock=clock
    )


def test_the_normal_path_is_one_create_and_records_its_payment(checkout_id: str) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    request = auth(checkout_id)
    http = ScriptedStripe((200, intent("pi_1", request)))
    result = gateway(http, log, clock).authorize(request)
    assert result == Authorized("pi_1", 1000, "eur")
    assert [(m, p, k) for m, p, k, _ in http.sent] == [
        ("post", "/v1/payment_intents", request.idempotency_key)
    ]
    [row] = log.attempts("stripe", checkout_id)
    assert (row.payment_id, row.outcome, row.started_at) == ("pi_1", Outcome.AUTHORIZED, clock.now)


def test_a_recorded_payment_is_reused_by_one_retrieve(checkout_id: str) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    first = auth(checkout_id)
    http = ScriptedStripe((200, intent("pi_1", first)), (200, intent("pi_1", first)))
    gw = gateway(http, log, clock)
    gw.authorize(first)
    again = gw.authorize(auth(checkout_id, attempt=2))  # the saga's retry: a new key
    assert again == Authorized("pi_1", 1000, "eur")
    assert [(m, p) for m, p, _, _ in http.sent[1:]] == [("get", "/v1/payment_intents/pi_1")]
    assert http.lists() == 0


def test_an_ambiguous_attempt_is_settled_by_resending_its_own_key(checkout_id: str) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    first = auth(checkout_id)
    http = ScriptedStripe(LOST, LOST, (200, intent("pi_1", first)), (200, intent("pi_1", first)))
    gw = gateway(http, log, clock)
    with pytest.raises(UnknownOutcomeError):
        gw.authorize(first)  # the create and its immediate re-send both lost their answers
    assert log.attempts("stripe", checkout_id)[0].outcome == Outcome.PENDING
    clock.now += 60
    again = gw.authorize(auth(checkout_id, attempt=2))
    assert again == Authorized("pi_1", 1000, "eur")
    creates = [(k, params) for m, p, k, params in http.sent if m == "post"]
    # Every create went out under attempt 1's key with the very same parameters; attempt 2
    # never needed its own.
    assert {k for k, _ in creates} == {first.idempotency_key}
    assert all(params == creates[0][1] for _, params in creates)
    assert len(creates) == 3 and http.lists() == 0
    assert log.attempts("stripe", checkout_id)[0].payment_id == "pi_1"


def test_an_ambiguous_attempt_older_than_23_hours_is_looked_up_within_its_time(
    checkout_id: str,
) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    first, second = auth(checkout_id), auth(checkout_id, attempt=2)
    started = clock.now
    empty = {"object": "list", "data": [], "has_more": False, "url": "/v1/payment_intents"}
    http = ScriptedStripe(LOST, LOST, (200, empty), (200, intent("pi_2", second)))
    gw = gateway(http, log, clock)
    with pytest.raises(UnknownOutcomeError):
        gw.authorize(first)
    clock.now += REPLAY_WINDOW_S + 1  # its key may be pruned at Stripe: re-sending could charge
    assert gw.authorize(second) == Authorized("pi_2", 1000, "eur")
    method, path, _, params = http.sent[2]
    assert (method, path) == ("get", "/v1/payment_intents")
    assert int(params["created[gte]"]) <= started <= int(params["created[lte]"])
    assert int(params["created[lte]"]) - int(params["created[gte]"]) <= 3600
    assert http.sent[3][2] == second.idempotency_key  # nothing found: attempt 2 is created
    assert [r.outcome for r in log.attempts("stripe", checkout_id)] == [
        Outcome.FAILED,
        Outcome.AUTHORIZED,
    ]


def test_a_redelivered_decline_is_replayed_from_the_record(checkout_id: str) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    declined = {"error": {"type": "card_error", "code": "card_declined", "message": "Declined."}}
    http = ScriptedStripe((402, declined))
    gw = gateway(http, log, clock)
    request = auth(checkout_id)
    first, again = gw.authorize(request), gw.authorize(request)
    assert isinstance(first, Declined) and first.decline_code == "card_declined"
    assert again == Declined("declined", "card_declined", None, retryable=False)
    assert len(http.sent) == 1


def test_a_key_reused_with_other_parameters_is_refused_without_a_request(
    checkout_id: str,
) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    request = auth(checkout_id)
    http = ScriptedStripe((200, intent("pi_1", request)))
    gw = gateway(http, log, clock)
    gw.authorize(request)
    with pytest.raises(PermanentPaymentError) as refused:
        gw.authorize(auth(checkout_id, amount=1200))
    assert refused.value.code == "idempotency_error"
    assert len(http.sent) == 1


def test_stripes_in_flight_conflict_is_retryable_and_keeps_the_attempt_pending(
    checkout_id: str,
) -> None:
    from adapters.payments.port import RetryablePaymentError

    log, clock = InMemoryAttemptLog(), Clock()
    busy = {"error": {"type": "idempotency_error", "message": "another in-progress request"}}
    http = ScriptedStripe((409, busy))
    with pytest.raises(RetryablePaymentError):
        gateway(http, log, clock).authorize(auth(checkout_id))
    assert log.attempts("stripe", checkout_id)[0].outcome == Outcome.PENDING


def test_an_attempt_still_in_doubt_blocks_a_new_one(checkout_id: str) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    http = ScriptedStripe(LOST, LOST, LOST, (200, EMPTY))
    gw = gateway(http, log, clock)
    with pytest.raises(UnknownOutcomeError):
        gw.authorize(auth(checkout_id))
    clock.now += 60
    # Re-sent, no answer again, nothing listed: the re-send may still be executing at Stripe,
    # so attempt 2 must not be created yet.
    with pytest.raises(UnknownOutcomeError) as doubt:
        gw.authorize(auth(checkout_id, attempt=2))
    assert doubt.value.code == "attempt_in_doubt"
    assert [k for m, _, k, _ in http.sent if m == "post"] == [
        f"{checkout_id}:authorize_payment:1"
    ] * 3
    assert [r.attempt for r in log.attempts("stripe", checkout_id)] == [1]
    assert log.attempts("stripe", checkout_id)[0].last_sent_at == clock.now


def test_a_replayed_500_settles_the_attempt_by_one_bounded_listing(checkout_id: str) -> None:
    log, clock = InMemoryAttemptLog(), Clock()
    second = auth(checkout_id, attempt=2)
    replayed = {"Idempotent-Replayed": "true"}
    http = ScriptedStripe(
        (500, API_ERROR),  # the create: Stripe began executing and failed
        (500, API_ERROR, replayed),  # its immediate re-send: the saved 500
        (500, API_ERROR, replayed),  # attempt 2 re-sends attempt 1 first: the saved 500 again
        (200, EMPTY),  # nothing was created under that key
        (200, intent("pi_2", second)),
    )
    gw = gateway(http, log, clock)
    with pytest.raises(UnknownOutcomeError):
        gw.authorize(auth(checkout_id))
    clock.now += 60
    assert gw.authorize(second) == Authorized("pi_2", 1000, "eur")
    assert [k for m, _, k, _ in http.sent if m == "post"][-1] == second.idempotency_key
    assert http.lists() == 1
    assert [r.outcome for r in log.attempts("stripe", checkout_id)] == [
        Outcome.FAILED,
        Outcome.AUTHORIZED,
    ]
