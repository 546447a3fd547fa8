"""One EmailSender contract, run against SMTP (aiosmtpd) and SendGrid (local v3 peer)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.notifications.http_sender import SendGridSender
from adapters.notifications.port import (
    EmailSender,
    OutgoingEmail,
    PermanentSendError,
    TransientSendError,
)
from adapters.notifications.smtp import SmtpSender

pytestmark = pytest.mark.integration


@dataclass
class Subject:
    sender: EmailSender
    inbox: Any  # conftest.Inbox: .messages, .failures


def email() -> OutgoingEmail:
    tag = uuid.uuid4().hex[:8]
    return OutgoingEmail(
        to=f"buyer-{tag}@example.com",
        subject=f"Order confirmation ord-{tag}",
        body=f"Thank you for your order ord-{tag}.\nTotal: 19.99 USD\n",
        idempotency_key=f"ord-{tag}:order_confirmation",
    )


class EmailSenderContract:
    @pytest.fixture
    def subject(self) -> Subject:
        raise NotImplementedError

    def test_delivers_plain_text(self, subject: Subject) -> None:
        message = email()
        subject.sender.send(message)
        (got,) = subject.inbox.messages
        assert (got.to, got.subject) == (message.to, message.subject)
        assert got.body.replace("\r\n", "\n") == message.body

    def test_same_key_gives_same_dedup_id(self, subject: Subject) -> None:
        message = email()
        subject.sender.send(message)
        subject.sender.send(message)
        first, second = subject.inbox.messages
        assert first.dedup_id == second.dedup_id
        subject.sender.send(email())
        assert subject.inbox.messages[2].dedup_id != first.dedup_id

    def test_transient_rejection_raises_transient(self, subject: Subject) -> None:
        subject.inbox.failures.append("transient")
        with pytest.raises(TransientSendError):
            subject.sender.send(email())
        assert subject.inbox.messages == []

    def test_permanent_rejection_raises_permanent(self, subject: Subject) -> None:
        subject.inbox.failures.append("permanent")
        with pytest.raises(PermanentSendError):
            subject.sender.send(email())
        assert subject.inbox.messages == []

    def test_unreachable_provider_is_transient(self, subject: Subject) -> None:
        with pytest.raises(TransientSendError):
            self.unreachable().send(email())

    def unreachable(self) -> EmailSender:
        raise NotImplementedError


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: connections are refused


class TestSmtpSender(EmailSenderContract):
    @pytest.fixture
    def subject(self, smtp_peer: tuple[str, int, Any]) -> Subject:
        host, port, inbox = smtp_peer
        return Subject(SmtpSender(host, port, from_address="shop@example.com", timeout_s=5), inbox)

    def unreachable(self) -> EmailSender:
        return SmtpSender("127.0.0.1", _closed_port(), from_address="s@example.com", timeout_s=2)


class TestSendGridSender(EmailSenderContract):
    @pytest.fixture
    def subject(self, sendgrid_peer: tuple[str, Any], sendgrid_api_key: str) -> Subject:
        url, inbox = sendgrid_peer
        self.key = sendgrid_api_key
        sender = SendGridSender(sendgrid_api_key, from_address="shop@example.com", base_url=url)
        return Subject(sender, inbox)

    def unreachable(self) -> EmailSender:
        url = f"http://127.0.0.1:{_closed_port()}"
        return SendGridSender(self.key, from_address="s@example.com", base_url=url)

    def test_bad_api_key_is_permanent(self, sendgrid_peer: tuple[str, Any]) -> None:
        url, inbox = sendgrid_peer
        with pytest.raises(PermanentSendError, match="401"):
            SendGridSender("SG.wrong", from_address="s@example.com", base_url=url).send(email())
        assert inbox.messages == []
