"""EmailSender over SMTP (smtplib). aiosmtpd is the peer in tests and the demo inbox."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from adapters.notifications.port import OutgoingEmail, PermanentSendError, TransientSendError

KIND_HEADER = "X-Notification-Kind"


class SmtpSender:
    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        from_address: str,
        timeout_s: float = 10.0,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        message_id_domain: str = "checkout-saga.local",
    ) -> None:
        self._host = host
        self._port = port
        self._from = from_address
        self._timeout_s = timeout_s  # socket timeout: bounds connect and every command
        self._starttls = starttls
        self._username = username
        self._password = password
        self._domain = message_id_domain

    @classmethod
    def from_url(cls, url: str, *, from_address: str, timeout_s: float = 10.0) -> SmtpSender:
        """`smtp://[user:password@]host[:port]` (plain, port 25 by default) or
        `smtp+starttls://...` (STARTTLS, port 587 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls") or not parts.hostname:
            raise ValueError(f"expected smtp://host:port or smtp+starttls://host:port, got {url!r}")
        starttls = parts.scheme == "smtp+starttls"
        return cls(
            parts.hostname,
            parts.port or (587 if starttls else 25),
            from_address=from_address,
            timeout_s=timeout_s,
            starttls=starttls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def message_id(self, email: OutgoingEmail) -> str:
        # Deterministic: a re-send after a crash has the same Message-ID, which receiving
        # systems use to drop duplicates.
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()[:32]
        return f"<{digest}@{self._domain}>"

    def send(self, email: OutgoingEmail) -> str | None:
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = self.message_id(email)
        if email.kind:
            message[KIND_HEADER] = email.kind
        message.set_content(email.body)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            raise _by_code(min(codes), f"recipient refused: {e.recipients}") from e
        except smtplib.SMTPResponseException as e:  # sender refused, data refused, auth, ...
            raise _by_code(e.smtp_code, f"{e.smtp_code} {e.smtp_error!r}") from e
        except (smtplib.SMTPException, OSError) as e:  # disconnects, refused, timeouts
            raise TransientSendError(f"smtp: {type(e).__name__}: {e}") from e
        return message["Message-ID"]


def _by_code(code: int, detail: str) -> TransientSendError | PermanentSendError:
    # RFC 5321: 4yz is a transient negative reply, 5yz permanent.
    if 400 <= code < 500:
        return TransientSendError(f"smtp: {detail}")
    return PermanentSendError(f"smtp: {detail}")
