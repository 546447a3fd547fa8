"""EmailSender over SendGrid's v3 Mail Send API (POST /v3/mail/send) with httpx.

Contract used (SendGrid v3 docs): Bearer API key; body {personalizations: [{to: [{email}]}],
from: {email}, subject, content: [{type: "text/plain", value}], custom_args}; 202 Accepted with
an X-Message-Id header on success; 400/401/403/413 with {"errors": [...]} are permanent for this
message; 429 and 5xx are transient. No retries here: the service applies resilience once.
"""

from __future__ import annotations

import httpx

from adapters.notifications.port import OutgoingEmail, PermanentSendError, TransientSendError


class SendGridSender:
    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        from_address: str,
        base_url: str = "https://api.sendgrid.com",
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._from = from_address
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def close(self) -> None:
        self._client.close()

    def send(self, email: OutgoingEmail) -> str | None:
        body = {
            "personalizations": [{"to": [{"email": email.to}]}],
            "from": {"email": self._from},
            "subject": email.subject,
            "content": [{"type": "text/plain", "value": email.body}],
            # Echoed in SendGrid's event webhook: lets us correlate and spot duplicates.
            "custom_args": {"idempotency_key": email.idempotency_key, "kind": email.kind},
        }
        try:
            response = self._client.post("/v3/mail/send", json=body, headers=self._headers)
        except httpx.TransportError as e:
            raise TransientSendError(f"sendgrid: {type(e).__name__}: {e}") from e
        if response.status_code == 202:
            return response.headers.get("X-Message-Id")
        detail = f"sendgrid: HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientSendError(detail)
        raise PermanentSendError(detail)
