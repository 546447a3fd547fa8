"""The attempt log's contract, run against the in-memory log and PostgreSQL (`payment_attempts`
from the schema history)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import psycopg
import pytest

from adapters.payments.attempt_log import (
    AttemptLog,
    AttemptRecord,
    InMemoryAttemptLog,
    Outcome,
    PostgresAttemptLog,
)
from adapters.payments.port import AuthorizationRequest


def request(checkout_id: str, attempt: int, amount: int = 1000) -> AuthorizationRequest:
    return AuthorizationRequest(
        checkout_id, attempt, f"{checkout_id}:authorize_payment:{attempt}", "pm_x", "cus", amount,
        "EUR",
    )  # fmt: skip


class AttemptLogContract:
    def test_begin_is_durable_and_first_writer_wins(self, log: AttemptLog) -> None:
        cid = f"co_{uuid.uuid4().hex[:8]}"
        first = AttemptRecord.of("stripe", request(cid, 1), 100.0)
        assert log.begin(first) == first
        other = AttemptRecord.of("stripe", request(cid, 1, amount=999), 200.0)
        assert log.begin(other) == first  # the key's first parameters stay
        assert log.attempts("stripe", cid) == [first]
        # What a re-send repeats: the create exactly as first sent (currency as sent, lower).
        assert log.attempts("stripe", cid)[0].request() == replace(request(cid, 1), currency="eur")

    def test_attempts_are_per_provider_and_checkout_oldest_first(self, log: AttemptLog) -> None:
        cid = f"co_{uuid.uuid4().hex[:8]}"
        log.begin(AttemptRecord.of("stripe", request(cid, 2), 300.0))
        log.begin(AttemptRecord.of("stripe", request(cid, 1), 100.0))
        log.begin(AttemptRecord.of("other", request(cid, 1), 50.0))
        log.begin(AttemptRecord.of("stripe", request(f"{cid}x", 1), 10.0))
        assert [r.attempt for r in log.attempts("stripe", cid)] == [1, 2]
        assert [r.provider for r in log.attempts("other", cid)] == ["other"]

    def test_resolve_records_the_answer_and_never_forgets_a_payment_id(
        self, log: AttemptLog
    ) -> None:
        cid = f"co_{uuid.uuid4().hex[:8]}"
        key = request(cid, 1).idempotency_key
        log.begin(AttemptRecord.of("stripe", request(cid, 1), 100.0))
        log.resolve("stripe", key, Outcome.ACTION_REQUIRED, "pi_1")
        log.resolve("stripe", key, Outcome.DECLINED, None, "card_declined")
        [row] = log.attempts("stripe", cid)
        assert (row.outcome, row.payment_id, row.decline_code) == (
            Outcome.DECLINED,
            "pi_1",
            "card_declined",
        )
        assert row.same_request(request(cid, 1))
        assert not row.same_request(request(cid, 1, amount=1))

    def test_resent_only_moves_the_last_send_forward(self, log: AttemptLog) -> None:
        cid = f"co_{uuid.uuid4().hex[:8]}"
        key = request(cid, 1).idempotency_key
        log.begin(AttemptRecord.of("stripe", request(cid, 1), 100.0))
        assert log.attempts("stripe", cid)[0].sent_until == 100.0
        log.resent("stripe", key, 400.0)
        log.resent("stripe", key, 300.0)  # a slower worker's older re-send
        [row] = log.attempts("stripe", cid)
        assert (row.started_at, row.sent_until) == (100.0, 400.0)


class TestInMemoryAttemptLog(AttemptLogContract):
    @pytest.fixture
    def log(self) -> AttemptLog:
        return InMemoryAttemptLog()


@pytest.mark.integration
class TestPostgresAttemptLog(AttemptLogContract):
    @pytest.fixture
    def log(self, migrated_database_url: str) -> AttemptLog:
        return PostgresAttemptLog(lambda: psycopg.connect(migrated_database_url))
