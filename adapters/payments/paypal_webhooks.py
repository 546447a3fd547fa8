"""PayPal webhooks -> `RecordPaymentSignal`: verified offline, deduplicated, normalised.

Verification is PayPal's documented offline method, so the webhook path makes no PSP round trip
(`POST /v1/notifications/verify-webhook-signature` would need our OAuth credentials in the API
and a PayPal call per event): PAYPAL-TRANSMISSION-SIG is a base64 RSA-SHA256 (PKCS#1 v1.5)
signature over

    "<PAYPAL-TRANSMISSION-ID>|<PAYPAL-TRANSMISSION-TIME>|<our webhook id>|<crc32 of the raw body>"

made with the key of the certificate at PAYPAL-CERT-URL. We only fetch that certificate over
HTTPS from an allow-listed PayPal host (else anyone could point us at their own certificate),
check its validity dates and subject (messageverificationcerts.paypal.com), and cache it by URL.
The webhook id is ours (the listener's id in the PayPal app), so a delivery signed for another
listener does not verify. Each delivery attempt is signed afresh with its own transmission time,
which must be within `tolerance_s` of now; dedup is on the event id (`WH-...`), which every
redelivery of one event shares.

Events (payment_id is always the PayPal order id, as in `PayPalGateway`):
CHECKOUT.ORDER.APPROVED -> AUTHORIZED (the payer finished the payer action; see decision 18 of
docs/decisions/0003-payments.md for why that is the saga's "authorized"),
PAYMENT.AUTHORIZATION.CREATED -> AUTHORIZED (DENIED status -> FAILED),
PAYMENT.AUTHORIZATION.VOIDED -> CANCELED, PAYMENT.CAPTURE.COMPLETED -> SUCCEEDED,
PAYMENT.CAPTURE.DENIED / DECLINED -> FAILED, PAYMENT.CAPTURE.REFUNDED -> REFUNDED (the total
refunded so far). The checkout id is the resource's `custom_id` (set by the gateway).

`WebhookIngest` hands one string to `handle_webhook`; the endpoint packs the five PAYPAL-*
headers into it with `signature_bundle`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import logging
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from adapters.payments.paypal_money import from_paypal
from adapters.payments.webhooks import InvalidSignature, WebhookEventStore
from events.messages import PaymentSignal, RecordPaymentSignal

log = logging.getLogger(__name__)

HEADERS = (
    "PAYPAL-TRANSMISSION-ID",
    "PAYPAL-TRANSMISSION-TIME",
    "PAYPAL-TRANSMISSION-SIG",
    "PAYPAL-CERT-URL",
    "PAYPAL-AUTH-ALGO",
)
PAYPAL_CERT_HOSTS = (
    "api.paypal.com",
    "api-m.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.sandbox.paypal.com",
)
CERT_COMMON_NAME = "messageverificationcerts.paypal.com"
CERT_COMMON_NAMES = (CERT_COMMON_NAME, "messageverificationcerts.sandbox.paypal.com")
AUTH_ALGO = "SHA256withRSA"
DEFAULT_TOLERANCE_S = 300
DEDUP_TTL_S = 7 * 24 * 3600  # PayPal retries a failed delivery up to 25 times over 3 days
CERT_CACHE_SIZE = 16
MAX_CERT_BYTES = 64 * 1024

CertFetcher = Callable[[str], bytes]

_SIGNALS = {
    "CHECKOUT.ORDER.APPROVED": PaymentSignal.AUTHORIZED,
    "PAYMENT.AUTHORIZATION.CREATED": PaymentSignal.AUTHORIZED,
    "PAYMENT.AUTHORIZATION.VOIDED": PaymentSignal.CANCELED,
    "PAYMENT.CAPTURE.COMPLETED": PaymentSignal.SUCCEEDED,
    "PAYMENT.CAPTURE.DENIED": PaymentSignal.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentSignal.FAILED,
    "PAYMENT.CAPTURE.REFUNDED": PaymentSignal.REFUNDED,
}


def signature_bundle(headers: Mapping[str, str]) -> str:
    """The five PAYPAL-* headers (any case) as the one string `handle_webhook` takes."""
    lower = {k.lower(): v for k, v in headers.items()}
    return json.dumps({h: lower.get(h.lower(), "") for h in HEADERS}, sort_keys=True)


def from_headers(
    ingest: Callable[[bytes, str], None],
) -> Callable[[bytes, Mapping[str, str]], None]:
    """An ingest taking (payload, signature bundle) as the API's endpoint calls it: with the
    request's headers, from which the bundle is made."""

    def deliver(payload: bytes, headers: Mapping[str, str]) -> None:
        ingest(payload, signature_bundle(headers))

    return deliver


def fetch_cert_https(url: str, *, timeout_s: float = 5.0) -> bytes:
    """GET the certificate with TLS verification on, no redirects (a redirect could leave the
    allow-listed host)."""
    response = httpx.get(url, timeout=timeout_s, follow_redirects=False)
    response.raise_for_status()
    if len(response.content) > MAX_CERT_BYTES:
        raise ValueError("certificate too large")
    return response.content


class PayPalWebhookHandler:
    def __init__(
        self,
        webhook_ids: Sequence[str],
        store: WebhookEventStore,
        *,
        fetch_cert: CertFetcher = fetch_cert_https,
        cert_hosts: Sequence[str] = PAYPAL_CERT_HOSTS,
        cert_common_names: Sequence[str] = CERT_COMMON_NAMES,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        provider: str = "paypal",
    ) -> None:
        if not webhook_ids:
            raise ValueError("at least one PayPal webhook id is required")
        # Several ids while a listener is replaced: both may deliver for a while.
        self._webhook_ids = tuple(webhook_ids)
        self._store = store
        self._fetch = fetch_cert
        self._hosts = frozenset(h.lower() for h in cert_hosts)
        self._names = frozenset(cert_common_names)
        self._tolerance = tolerance_s
        self._provider = provider
        self._certs: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PayPalWebhookHandler(provider={self._provider!r})"

    # --- verification ----------------------------------------------------------------------

    def verify(self, payload: bytes, signature_header: str, now: int) -> Mapping[str, Any]:
        headers = _bundle(signature_header)
        if headers["PAYPAL-AUTH-ALGO"] != AUTH_ALGO:
            raise InvalidSignature(f"unsupported PAYPAL-AUTH-ALGO {headers['PAYPAL-AUTH-ALGO']!r}")
        sent = _timestamp(headers["PAYPAL-TRANSMISSION-TIME"])
        if abs(now - sent) > self._tolerance:
            raise InvalidSignature("PAYPAL-TRANSMISSION-TIME outside the accepted window")
        try:
            signature = base64.b64decode(headers["PAYPAL-TRANSMISSION-SIG"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidSignature("PAYPAL-TRANSMISSION-SIG is not base64") from e
        public_key = self._public_key(headers["PAYPAL-CERT-URL"], now)
        crc = zlib.crc32(payload)
        tid = headers["PAYPAL-TRANSMISSION-ID"]
        when = headers["PAYPAL-TRANSMISSION-TIME"]
        if not any(
            _verifies(public_key, signature, f"{tid}|{when}|{wid}|{crc}".encode())
            for wid in self._webhook_ids
        ):
            raise InvalidSignature("PAYPAL-TRANSMISSION-SIG does not match a configured webhook")
        try:
            event = json.loads(payload)
        except ValueError as e:
            raise InvalidSignature("signed payload is not JSON") from e
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise InvalidSignature("signed payload is not an event")
        return event

    def _public_key(self, url: str, now: int) -> rsa.RSAPublicKey:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self._hosts:
            raise InvalidSignature(f"PAYPAL-CERT-URL host {host!r} is not allow-listed")
        if parts.scheme != "https" and not _loopback(host):
            # Plain HTTP only for a loopback host someone deliberately allow-listed (tests).
            raise InvalidSignature("PAYPAL-CERT-URL is not https")
        with self._lock:
            cert = self._certs.get(url)
        if cert is None:
            try:
                cert = x509.load_pem_x509_certificate(self._fetch(url))
            except Exception as e:  # network, HTTP status, PEM: none of them proves anything
                raise InvalidSignature(f"cannot load the certificate: {type(e).__name__}") from e
            with self._lock:
                self._certs[url] = cert
                while len(self._certs) > CERT_CACHE_SIZE:
                    self._certs.popitem(last=False)
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise InvalidSignature("the signing certificate is not valid now")
        names = {a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
        if not names & self._names:
            raise InvalidSignature("the signing certificate is not PayPal's")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature("the signing certificate has no RSA key")
        return key

    # --- the ingest interface --------------------------------------------------------------

    def handle_webhook(
        self, payload: bytes, signature_header: str, now: int, event_id: str | None = None
    ) -> RecordPaymentSignal | None:
        del event_id  # PayPal's event id is in the signed body
        event = self.verify(payload, signature_header, now)
        signal = self.translate(event)
        if signal is None:
            return None  # not ours or not interesting: nothing to deduplicate
        if not self._store.claim(signal.provider_event_id):
            log.info("duplicate webhook ignored", extra={"event_id": signal.provider_event_id})
            return None
        return signal

    def release(self, event_id: str) -> None:
        """Call when the returned signal could not be produced, so a redelivery is accepted."""
        self._store.release(event_id)

    def translate(self, event: Mapping[str, Any]) -> RecordPaymentSignal | None:
        event_type = str(event.get("event_type"))
        signal = _SIGNALS.get(event_type)
        resource = event.get("resource")
        if signal is None or not isinstance(resource, Mapping):
            return None
        if event_type == "CHECKOUT.ORDER.APPROVED":
            units = resource.get("purchase_units") or [{}]
            unit = units[0] if isinstance(units[0], Mapping) else {}
            checkout_id, money, payment_id = unit.get("custom_id"), unit.get("amount"), None
            payment_id = resource.get("id")
        else:
            checkout_id, money = resource.get("custom_id"), resource.get("amount")
            payment_id = _order_id(resource)
        if not isinstance(checkout_id, str) or not checkout_id or not isinstance(payment_id, str):
            return None  # a payment this engine did not create
        if signal == PaymentSignal.REFUNDED:
            breakdown = resource.get("seller_payable_breakdown")
            total = (
                breakdown.get("total_refunded_amount") if isinstance(breakdown, Mapping) else None
            )
            money = total or money
        if signal == PaymentSignal.AUTHORIZED and resource.get("status") == "DENIED":
            signal = PaymentSignal.FAILED
        try:
            amount, currency = from_paypal(money)
        except ValueError:
            return None
        reason = None
        if signal == PaymentSignal.FAILED:
            details = resource.get("status_details")
            reason = str(details.get("reason")) if isinstance(details, Mapping) else event_type
        return RecordPaymentSignal(
            checkout_id=checkout_id,
            provider=self._provider,
            provider_event_id=str(event["id"]),
            signal=signal,
            payment_id=payment_id,
            amount=amount,
            currency=currency,
            reason=reason,
        )


def _bundle(signature_header: str) -> dict[str, str]:
    try:
        raw = json.loads(signature_header)
    except ValueError as e:
        raise InvalidSignature("PayPal signature headers missing") from e
    if not isinstance(raw, dict):
        raise InvalidSignature("PayPal signature headers missing")
    headers = {h: str(raw.get(h) or "").strip() for h in HEADERS}
    missing = [h for h, v in headers.items() if not v]
    if missing:
        raise InvalidSignature(f"missing {', '.join(missing)}")
    return headers


def _timestamp(raw: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidSignature("PAYPAL-TRANSMISSION-TIME is not a timestamp") from e
    if moment.tzinfo is None:
        raise InvalidSignature("PAYPAL-TRANSMISSION-TIME has no time zone")
    return int(moment.timestamp())


def _verifies(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except CryptoInvalidSignature:
        return False
    return True


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _order_id(resource: Mapping[str, Any]) -> str | None:
    """The order an authorization/capture belongs to (`supplementary_data.related_ids`); a
    refund names only its capture (`rel: up`), whose id we report then."""
    supplementary = resource.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, Mapping) else None
    if isinstance(related, Mapping) and isinstance(related.get("order_id"), str):
        return str(related["order_id"])
    for link in resource.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "up":
            return str(link.get("href", "")).rstrip("/").rsplit("/", 1)[-1] or None
    return None
