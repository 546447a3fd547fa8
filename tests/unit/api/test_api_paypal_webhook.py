"""POST /v1/webhooks/paypal: the five PAYPAL-* headers reach the ingest as one bundle; missing
headers and bad signatures are 400, an unrecorded signal 503, no PayPal configured 404."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from adapters.payments.paypal_webhooks import HEADERS, from_headers
from adapters.payments.webhook_ingest import InvalidSignature, WebhookNotRecorded
from tests.unit.api.fakes import World, app_for, make_world

HEADERS_SENT = {
    "paypal-transmission-id": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
    "paypal-transmission-time": "2026-12-02T16:00:00Z",
    "paypal-transmission-sig": "c2lnbmF0dXJl",
    "paypal-cert-url": "https://api.paypal.com/v1/notifications/certs/CERT-1",
    "paypal-auth-algo": "SHA256withRSA",
}


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        self.fail = fail

    def __call__(self, payload: bytes, signature: str) -> None:
        self.calls.append((payload, json.loads(signature)))
        if self.fail is not None:
            raise self.fail


def client_with(ingest: Recorder | None) -> tuple[TestClient, World]:
    world = make_world(provider_webhooks={"paypal": from_headers(ingest)} if ingest else {})
    return TestClient(app_for(world), raise_server_exceptions=False), world


def test_the_headers_reach_the_ingest_as_one_bundle() -> None:
    ingest = Recorder()
    client, _ = client_with(ingest)
    with client:
        r = client.post("/v1/webhooks/paypal", content=b'{"id":"WH-1"}', headers=HEADERS_SENT)
    assert r.status_code == 200 and r.json() == {"received": True}
    ((payload, bundle),) = ingest.calls
    assert payload == b'{"id":"WH-1"}'
    assert bundle == {h: HEADERS_SENT[h.lower()] for h in HEADERS}


def test_a_missing_header_is_400_before_the_ingest() -> None:
    ingest = Recorder()
    client, _ = client_with(ingest)
    partial = {k: v for k, v in HEADERS_SENT.items() if k != "paypal-cert-url"}
    with client:
        r = client.post("/v1/webhooks/paypal", content=b"{}", headers=partial)
    assert r.status_code == 400 and "PAYPAL-CERT-URL" in r.json()["reason"]
    assert ingest.calls == []


def test_a_bad_signature_is_400_and_an_unrecorded_signal_503() -> None:
    for fail, status in ((InvalidSignature("does not match"), 400), (WebhookNotRecorded("x"), 503)):
        client, _ = client_with(Recorder(fail))
        with client:
            r = client.post("/v1/webhooks/paypal", content=b"{}", headers=HEADERS_SENT)
        assert r.status_code == status, r.text


def test_without_paypal_configured_the_route_is_404() -> None:
    client, _ = client_with(None)
    with client:
        r = client.post("/v1/webhooks/paypal", content=b"{}", headers=HEADERS_SENT)
    assert r.status_code == 404
