"""The email port. Senders raise typed errors so the service can decide about retries:
transient (try again later: 4xx SMTP, 429/5xx HTTP, network) or permanent (never: bad
address, rejected content, bad credentials)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str  # plain text
    # Stable per (subject, kind): a re-send after a crash carries the same key, so providers
    # and mail clients that deduplicate on it (Message-ID, custom args) can collapse it.
    idempotency_key: str
    # What the email is ("order_confirmation", ...): a header for inboxes, filters and counts.
    kind: str = ""


class SendError(Exception):
    pass


class TransientSendError(SendError):
    """Worth retrying later."""


class PermanentSendError(SendError):
    """Retrying the same message can never succeed."""


class EmailSender(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> str | None:
        """Deliver `email` to the provider; return its message id if it gives one."""
        ...
