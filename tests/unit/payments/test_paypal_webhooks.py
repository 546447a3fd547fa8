"""PayPal webhook verification (offline: RSA-SHA256 over id|time|webhook id|crc32 with the
certificate from an allow-listed host), dedup and translation, without any network: the
certificate "fetch" is a table lookup."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from adapters.payments.paypal_webhooks import PayPalWebhookHandler, signature_bundle
from adapters.payments.webhooks import InMemoryEventStore, InvalidSignature
from events.messages import PaymentSignal
from tests.paypal_certs import SigningIdentity, signing_identity

WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-unit"
NOW = int(dt.datetime.now(dt.UTC).timestamp())


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return signing_identity()


class Certs:
    def __init__(self, table: dict[str, bytes]) -> None:
        self.table = table
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.table[url]


def handler_for(identity: SigningIdentity, **kw: Any) -> tuple[PayPalWebhookHandler, Certs]:
    certs = Certs({CERT_URL: identity.cert_pem})
    return PayPalWebhookHandler([WEBHOOK_ID], InMemoryEventStore(), fetch_cert=certs, **kw), certs


def capture_event(event_id: str = "WH-1", checkout_id: str = "co_1") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "resource_type": "capture",
            "resource": {
                "id": "3C679366HH908993F",
                "status": "COMPLETED",
                "amount": {"currency_code": "EUR", "value": "38.00"},
                "custom_id": checkout_id,
                "supplementary_data": {"related_ids": {"order_id": "5O190127TN364715T"}},
            },
        }
    ).encode()


def signed(identity: SigningIdentity, body: bytes, **kw: Any) -> str:
    when = kw.pop("when", NOW)
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = identity.sign(
        body,
        kw.pop("webhook_id", WEBHOOK_ID),
        cert_url=kw.pop("cert_url", CERT_URL),
        transmission_time=stamp,
    )
    return signature_bundle({k.lower(): v for k, v in headers.items()})  # header case varies


def test_good_signature_becomes_a_signal(identity: SigningIdentity) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    signal = handler.handle_webhook(body, signed(identity, body), NOW)
    assert signal is not None
    assert (signal.signal, signal.payment_id, signal.amount, signal.currency) == (
        PaymentSignal.SUCCEEDED,
        "5O190127TN364715T",
        3800,
        "eur",
    )
    assert (signal.checkout_id, signal.provider, signal.provider_event_id) == (
        "co_1",
        "paypal",
        "WH-1",
    )


def test_tampered_body_is_rejected(identity: SigningIdentity) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    header = signed(identity, body)
    tampered = body.replace(b"38.00", b"3800.00")
    with pytest.raises(InvalidSignature, match="does not match"):
        handler.handle_webhook(tampered, header, NOW)


def test_signature_for_another_webhook_id_is_rejected(identity: SigningIdentity) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    with pytest.raises(InvalidSignature, match="does not match"):
        handler.handle_webhook(body, signed(identity, body, webhook_id="OTHER-LISTENER"), NOW)


def test_a_second_configured_webhook_id_verifies_during_a_change(
    identity: SigningIdentity,
) -> None:
    certs = Certs({CERT_URL: identity.cert_pem})
    handler = PayPalWebhookHandler(["OLD", WEBHOOK_ID], InMemoryEventStore(), fetch_cert=certs)
    body = capture_event()
    assert handler.handle_webhook(body, signed(identity, body), NOW) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",  # not https
    ],
)
def test_certificate_from_a_host_not_allowed_is_rejected_before_fetching(
    identity: SigningIdentity, url: str
) -> None:
    handler, certs = handler_for(identity)
    certs.table[url] = identity.cert_pem
    body = capture_event()
    with pytest.raises(InvalidSignature, match=r"allow-listed|not https"):
        handler.handle_webhook(body, signed(identity, body, cert_url=url), NOW)
    assert certs.fetched == []


def test_a_certificate_not_issued_to_paypal_is_rejected(identity: SigningIdentity) -> None:
    impostor = signing_identity("shop.example")
    certs = Certs({CERT_URL: impostor.cert_pem})
    handler = PayPalWebhookHandler([WEBHOOK_ID], InMemoryEventStore(), fetch_cert=certs)
    body = capture_event()
    with pytest.raises(InvalidSignature, match="not PayPal's"):
        handler.handle_webhook(body, signed(impostor, body), NOW)


def test_signed_by_another_key_than_the_certificate_is_rejected(
    identity: SigningIdentity,
) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    with pytest.raises(InvalidSignature, match="does not match"):
        handler.handle_webhook(body, signed(signing_identity(), body), NOW)


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_transmission_time_is_rejected(
    identity: SigningIdentity, skew: int
) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    with pytest.raises(InvalidSignature, match="window"):
        handler.handle_webhook(body, signed(identity, body, when=NOW + skew), NOW)
    assert handler.handle_webhook(body, signed(identity, body, when=NOW - 299), NOW) is not None


def test_missing_headers_are_rejected(identity: SigningIdentity) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    headers = json.loads(signed(identity, body))
    headers["PAYPAL-TRANSMISSION-SIG"] = ""
    with pytest.raises(InvalidSignature, match="PAYPAL-TRANSMISSION-SIG"):
        handler.handle_webhook(body, json.dumps(headers), NOW)
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(body, "t=1,v1=stripe-style", NOW)


def test_duplicate_event_is_dropped_and_a_release_lets_it_in_again(
    identity: SigningIdentity,
) -> None:
    handler, certs = handler_for(identity)
    body = capture_event("WH-DUP")
    first = handler.handle_webhook(body, signed(identity, body), NOW)
    # A redelivery is signed afresh (new transmission id and time) but is the same event.
    assert first is not None
    assert handler.handle_webhook(body, signed(identity, body, when=NOW + 1), NOW + 1) is None
    handler.release("WH-DUP")
    assert handler.handle_webhook(body, signed(identity, body), NOW) == first
    assert certs.fetched == [CERT_URL]  # one fetch, cached after


def test_expired_certificate_is_rejected(identity: SigningIdentity) -> None:
    handler, _ = handler_for(identity)
    body = capture_event()
    later = NOW + 60 * 24 * 3600  # after the test certificate's 30 days
    with pytest.raises(InvalidSignature, match="not valid now"):
        handler.handle_webhook(body, signed(identity, body, when=later), later)


def _event(event_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"id": "WH-T", "event_type": event_type, "resource": resource}


def test_translation_of_the_events_the_saga_uses(identity: SigningIdentity) -> None:
    handler, _ = handler_for(identity)
    eur = {"currency_code": "EUR", "value": "10.00"}
    related = {"related_ids": {"order_id": "ORDER1"}}
    approved = handler.translate(
        _event(
            "CHECKOUT.ORDER.APPROVED",
            {
                "id": "ORDER1",
                "status": "APPROVED",
                "purchase_units": [{"custom_id": "co", "amount": eur}],
            },
        )
    )
    assert approved is not None
    assert (approved.signal, approved.payment_id, approved.amount) == (
        PaymentSignal.AUTHORIZED,
        "ORDER1",
        1000,
    )
    auth = {"custom_id": "co", "amount": eur, "supplementary_data": related}
    voided = handler.translate(_event("PAYMENT.AUTHORIZATION.VOIDED", {**auth, "status": "VOIDED"}))
    denied = handler.translate(
        _event("PAYMENT.AUTHORIZATION.CREATED", {**auth, "status": "DENIED"})
    )
    failed = handler.translate(
        _event(
            "PAYMENT.CAPTURE.DENIED",
            {
                **auth,
                "status": "DECLINED",
                "status_details": {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"},
            },
        )
    )
    assert voided is not None and voided.signal == PaymentSignal.CANCELED
    assert denied is not None and denied.signal == PaymentSignal.FAILED
    assert failed is not None and failed.signal == PaymentSignal.FAILED
    assert failed.reason == "DECLINED_BY_RISK_FRAUD_FILTERS"
    # Not ours (no custom_id) and not interesting: nothing.
    assert handler.translate(_event("PAYMENT.CAPTURE.COMPLETED", {"amount": eur})) is None
    assert handler.translate(_event("CUSTOMER.DISPUTE.CREATED", auth)) is None
