"""A PayPal-style webhook signing identity for tests: an RSA key and a self-signed certificate,
and the signature PayPal sends (RSA-SHA256 over "transmission_id|time|webhook_id|crc32")."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
import zlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from adapters.payments.paypal_webhooks import CERT_COMMON_NAME


@dataclass(frozen=True)
class SigningIdentity:
    key: rsa.RSAPrivateKey = field(repr=False)
    cert_pem: bytes

    def sign(
        self,
        body: bytes,
        webhook_id: str,
        *,
        cert_url: str,
        transmission_id: str | None = None,
        transmission_time: str | None = None,
    ) -> dict[str, str]:
        """The five PAYPAL-* headers of one delivery of `body`."""
        tid = transmission_id or str(uuid.uuid4())
        when = transmission_time or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"{tid}|{when}|{webhook_id}|{zlib.crc32(body)}".encode()
        signature = self.key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": tid,
            "PAYPAL-TRANSMISSION-TIME": when,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }


def signing_identity(
    common_name: str = CERT_COMMON_NAME, *, valid_days: int = 30
) -> SigningIdentity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return SigningIdentity(key, cert.public_bytes(serialization.Encoding.PEM))
