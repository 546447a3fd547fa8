"""What a failed payment call leaves in the log (issue 13 item 5): one WARNING line with provider,
operation, HTTP status, error code and checkout id; the SDK's per-request chatter at DEBUG; the
API key and the payment method never in any record."""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import stripe

from adapters.payments.service import PaymentService
from adapters.payments.stripe_gateway import StripeGateway
from events.messages import AuthorizePayment, CapturePayment, PaymentCaptureFailed, PaymentDeclined
from infra.logs import quiet_vendor_http_logs

API_KEY = "sk_test_51Secret" + uuid.uuid4().hex  # what must never be logged
METHOD = "pm_card_4000000000000341"
SERVICE_LOGGER = "adapters.payments.service"


class ScriptedStripe(stripe.HTTPClient):
    """Stripe's HTTP client slot, answering from a script: no network, no peer."""

    name = "scripted"

    def __init__(self, *answers: tuple[int, Mapping[str, Any]]) -> None:
        super().__init__()
        self.answers = deque(answers)
        self.requests: list[tuple[str, str]] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        self.requests.append((method, url))
        status, body = self.answers.popleft()
        return json.dumps(body), status, {"Request-Id": f"req_{len(self.requests)}"}

    def close(self) -> None:
        pass


def error(kind: str, code: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message}}


def service_over(http: ScriptedStripe) -> PaymentService:
    gateway = StripeGateway(API_KEY, api_base="http://stripe.invalid", http_client=http)
    return PaymentService({"stripe": gateway}, breaker_fail_max=2, call_timeout_s=5)


@pytest.fixture
def checkout_id() -> str:
    return f"co_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def quiet() -> Iterator[None]:
    quiet_vendor_http_logs()
    yield


def authorize(checkout_id: str) -> AuthorizePayment:
    key = f"{checkout_id}:authorize_payment:1"
    return AuthorizePayment(checkout_id, 1, key, "stripe", METHOD, "cus_1", 1999, "USD")


def capture(checkout_id: str) -> CapturePayment:
    key = f"{checkout_id}:capture_payment:1"
    return CapturePayment(checkout_id, 1, key, "stripe", "pi_123", 1999, "USD")


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def everything(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's text, fields and traceback, at every level."""
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        parts.append(repr(vars(r)))
        if r.exc_info:
            parts.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(parts)


def test_a_failed_capture_leaves_one_warning_with_why_and_for_whom(
    caplog: pytest.LogCaptureFixture, checkout_id: str, quiet: None
) -> None:
    down = (500, error("api_error", "api_error", "Stripe is down"))
    http = ScriptedStripe(down, down)  # the capture, then the reconciliation's read
    service = service_over(http)
    caplog.set_level(logging.DEBUG)
    try:
        reply = service.handle(capture(checkout_id))
    finally:
        service.close()
    assert isinstance(reply, PaymentCaptureFailed) and reply.retryable
    # The capture's 500 is an unknown outcome, the read that would settle it failed too: one
    # call failed, one line.
    [line] = warnings(caplog)
    assert line.name == SERVICE_LOGGER
    text = line.getMessage()
    for part in (
        "provider=stripe",
        "operation=capture",
        "http_status=500",
        "error_code=api_error",
        f"checkout_id={checkout_id}",
    ):
        assert part in text, text
    fields = vars(line)
    assert (fields["provider"], fields["operation"], fields["checkout_id"]) == (
        "stripe",
        "capture",
        checkout_id,
    )
    assert (fields["http_status"], fields["error_code"]) == (500, "api_error")
    assert API_KEY not in everything(caplog)


def test_authorize_rate_limited_then_breaker_open(
    caplog: pytest.LogCaptureFixture, checkout_id: str, quiet: None
) -> None:
    rate_limited = (429, error("invalid_request_error", "rate_limit", "Too many requests"))
    http = ScriptedStripe(rate_limited, rate_limited)
    service = service_over(http)
    caplog.set_level(logging.DEBUG)
    try:
        replies = [service.handle(authorize(checkout_id)) for _ in range(3)]
    finally:
        service.close()
    assert all(isinstance(r, PaymentDeclined) and r.retryable for r in replies)
    assert len(http.requests) == 2  # the third call never left: the second opened the breaker
    lines = [r.getMessage() for r in warnings(caplog)]
    assert len(lines) == 3, lines
    assert all("provider=stripe operation=authorize" in t for t in lines)
    assert all(f"checkout_id={checkout_id}" in t for t in lines)
    # The call that tripped the breaker still reports what Stripe answered to it.
    assert "http_status=429 error_code=rate_limit" in lines[0]
    assert "http_status=429 error_code=rate_limit" in lines[1]
    assert "http_status=None error_code=circuit_open" in lines[2]
    assert API_KEY not in everything(caplog)
    # The payment method is the customer's: the service's lines never carry it.
    assert all(METHOD not in t for t in lines)


def test_the_sdk_request_chatter_is_debug_not_info(
    caplog: pytest.LogCaptureFixture, checkout_id: str, quiet: None
) -> None:
    http = ScriptedStripe((200, {"object": "list", "data": [], "has_more": False}))
    gateway = StripeGateway(API_KEY, api_base="http://stripe.invalid", http_client=http)
    caplog.set_level(logging.INFO)
    assert gateway.find_by_checkout(checkout_id) == []
    assert [r for r in caplog.records if r.name.startswith("stripe")] == []

    http.answers.append((200, {"object": "list", "data": [], "has_more": False}))
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    gateway.find_by_checkout(checkout_id)
    chatter = [r for r in caplog.records if r.name.startswith("stripe")]
    assert chatter, "the SDK logged nothing at DEBUG: is the logger name still 'stripe'?"
    assert {r.levelno for r in chatter} == {logging.DEBUG}
    assert API_KEY not in everything(caplog)


def test_a_vendor_warning_is_not_demoted(caplog: pytest.LogCaptureFixture, quiet: None) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").warning("connection pool full")
    logging.getLogger("httpx").info("HTTP Request: GET https://api.taxjar.com")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "connection pool full")
    ]


def test_a_decline_is_an_answer_not_a_failed_call(
    caplog: pytest.LogCaptureFixture, checkout_id: str, quiet: None
) -> None:
    declined = error("card_error", "card_declined", "Your card was declined.")
    # The create is the only request: authorizing reads our attempt log, never the account.
    http = ScriptedStripe((402, declined))
    service = service_over(http)
    caplog.set_level(logging.INFO)
    try:
        reply = service.handle(authorize(checkout_id))
    finally:
        service.close()
    assert isinstance(reply, PaymentDeclined) and not reply.retryable
    assert http.requests == [("post", "http://stripe.invalid/v1/payment_intents")]
    assert warnings(caplog) == []
