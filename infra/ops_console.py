"""`InfraOperations`: the console's `Operations` port (api/ports.py) on the real services, built
from the same code the `saga` CLI runs (infra/ops.py, infra/dlq.py, infra/inspect.py), so a
console button and a CLI command are one act with one audit trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from confluent_kafka import KafkaException
from psycopg.rows import dict_row

from api.ports import JsonObject, OperationRefused, OperationsUnavailable, UnknownObject
from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from infra import dlq as dead_letters
from infra.inspect import inspect_checkout, status_of, timeline
from infra.ops import OpsError, Refused, ops_status, send_retry
from saga.evolve import REPLY_STEP, FailureReply

T = TypeVar("T")
COMPENSATIONS = frozenset({m.Step.RELEASE_INVENTORY, m.Step.VOID_PAYMENT, m.Step.REFUND_PAYMENT})
SEARCH_COLUMNS = (
    "checkout_id, customer_email, status, total, subtotal, currency, started_at,"
    " failure_step, failure_reason, attention_step, attention_reason"
)


ANALYTICS_METRICS = (
    "checkouts_started",
    "checkouts_completed",
    "checkouts_failed",
    "checkouts_cancelled",
    "conversion_rate",
)
ANALYTICS_WINDOWS = (
    "SELECT window_start, metric, value FROM checkout_metrics_minutely"
    " WHERE dimension = 'all' AND metric = ANY(%s) AND window_start >= ("
    " SELECT max(window_start) - interval '14 minutes' FROM checkout_metrics_minutely)"
)
ANALYTICS_ALERTS = (
    "SELECT alert, dimension, window_start, value, threshold FROM checkout_alerts"
    " ORDER BY window_start DESC, alert LIMIT 10"
)


class InfraOperations:
    def __init__(
        self,
        *,
        bootstrap: str,
        database_url: str,
        redis_url: str | None,
        schema_registry_url: str | None,
        isolation_level: str,
    ) -> None:
        self._bootstrap = bootstrap
        self._database_url = database_url
        self._redis_url = redis_url
        self._registry = schema_registry_url
        self._isolation = isolation_level

    def find_checkouts(
        self, *, text: str | None, status: str | None, limit: int
    ) -> list[JsonObject]:
        query = f"SELECT {SEARCH_COLUMNS} FROM projections.checkouts WHERE true"
        params: list[Any] = []
        if text:
            # An id (or the start of one) or an email, case-insensitively for the email.
            query += (
                " AND (checkout_id = %s OR checkout_id LIKE %s"
                " OR lower(customer_email) = lower(%s))"
            )
            params += [text, _prefix(text), text]
        if status:
            query += " AND status = %s"
            params.append(status)
        query += " ORDER BY started_at DESC, checkout_id LIMIT %s"
        params.append(limit)
        rows = _guard(lambda: self._rows(query, tuple(params)))
        return [_checkout(r) for r in rows]

    def timeline(self, checkout_id: str) -> JsonObject | None:
        found = _guard(
            lambda: inspect_checkout(
                self._bootstrap, make_serde(self._registry), checkout_id, self._isolation
            )
        )
        if not found.history:
            return None
        history = found.history
        first = history[0].occurred_at
        return {
            "checkout_id": checkout_id,
            "status": status_of(history),
            "started_at_ms": first,
            "duration_ms": history[-1].occurred_at - first,
            "lanes": lanes(history),
            "events": [asdict(row) for row in timeline(history)],
        }

    def dead_letters(self) -> list[JsonObject]:
        def read() -> tuple[list[dead_letters.DeadLetter], dict[str, list[dead_letters.Redrive]]]:
            topics = dead_letters.dlq_topics(self._bootstrap)
            letters = dead_letters.read_dead_letters(
                self._bootstrap, topics, isolation_level=self._isolation
            )
            return letters, dead_letters.redrives(self._database_url)

        letters, done = _guard(read)
        letters.sort(key=lambda d: (d.failed_at_ms or d.timestamp_ms, d.id))
        return [
            {
                "id": d.id,
                "key": (d.key or b"").decode(errors="replace"),
                "type": d.message_type,
                "topic": d.topic,
                "partition": d.partition,
                "offset": d.offset,
                "error": d.error,
                "processor": d.processor,
                "failed_at_ms": d.failed_at_ms,
                "redriven": [asdict(r) for r in done.get(d.id, [])],
            }
            for d in letters
        ]

    def redrive(self, dead_letter_id: str, *, actor: str, reason: str) -> JsonObject:
        def run() -> dead_letters.Redrive:
            topic, _, _ = dead_letters.parse_id(dead_letter_id)
            letters = dead_letters.read_dead_letters(
                self._bootstrap,
                dead_letters.dlq_topics(self._bootstrap, topic),
                isolation_level=self._isolation,
            )
            letter = dead_letters.find(letters, dead_letter_id)
            return dead_letters.redrive(
                self._bootstrap, self._database_url, letter, actor=actor, reason=reason
            )

        try:
            done = _guard(run)
        except dead_letters.DeadLetterError as e:
            if str(e).startswith("no dead letter") or "is not a dead letter id" in str(e):
                raise UnknownObject(str(e)) from e
            raise OperationRefused(str(e)) from e
        return {"id": dead_letter_id, **asdict(done)}

    def retry(self, checkout_id: str, *, actor: str, reason: str) -> JsonObject:
        try:
            message_id = _guard(
                lambda: send_retry(
                    self._bootstrap,
                    self._registry,
                    self._database_url,
                    checkout_id,
                    actor=actor,
                    reason=reason,
                )
            )
        except Refused as e:
            if str(e).startswith("unknown checkout"):
                raise UnknownObject(str(e)) from e
            raise OperationRefused(str(e)) from e
        return {"checkout_id": checkout_id, "message_id": message_id, "actor": actor}

    def status(self) -> JsonObject:
        found = _guard(
            lambda: ops_status(
                self._bootstrap, self._database_url, self._redis_url, self._isolation
            )
        )
        return {
            "lag": [
                {
                    "group": t.group,
                    "topic": t.topic,
                    "lag": t.lag,
                    "partitions": [
                        {
                            "partition": p.partition,
                            "committed": p.committed,
                            "end": p.high,
                            "lag": p.lag,
                        }
                        for p in t.partitions
                    ],
                }
                for t in found.lag
            ],
            "dlq": [
                {"topic": d.topic, "records": d.records, "redriven": d.redriven} for d in found.dlq
            ],
            "breakers": [asdict(b) for b in found.breakers],
            "analytics": _guard(self._analytics),
        }

    def _analytics(self) -> JsonObject:
        """The last 15 minutely windows and the last alerts, as `saga analytics` flushed them
        (checkout_metrics_minutely, checkout_alerts; migration 0007)."""
        windows = self._rows(ANALYTICS_WINDOWS, (list(ANALYTICS_METRICS),))
        by_start: dict[int, dict[str, Any]] = {}
        for r in windows:
            start = int(r["window_start"].timestamp() * 1000)
            by_start.setdefault(start, {"window_start_ms": start})[r["metric"]] = str(r["value"])
        alerts = self._rows(ANALYTICS_ALERTS, ())
        return {
            "minutely": [by_start[k] for k in sorted(by_start, reverse=True)],
            "alerts": [
                {
                    "alert": a["alert"],
                    "dimension": a["dimension"],
                    "window_start_ms": int(a["window_start"].timestamp() * 1000),
                    "value": str(a["value"]),
                    "threshold": str(a["threshold"]),
                }
                for a in alerts
            ],
        }

    def _rows(self, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with psycopg.connect(self._database_url, row_factory=dict_row, connect_timeout=5) as conn:
            return list(conn.execute(query, params).fetchall())


def lanes(history: list[Envelope[Any]]) -> list[JsonObject]:
    """One lane per step on the saga's time axis (ms since its first event), so parallel steps
    (reserve, tax, shipping) overlap; each attempt from its StepStarted to the verdict."""
    first = history[0].occurred_at
    by_step: dict[m.Step, list[dict[str, Any]]] = {}
    for e in history:
        msg = e.message
        at = e.occurred_at - first
        if isinstance(msg, m.StepStarted):
            by_step.setdefault(msg.step, []).append(
                {
                    "attempt": msg.attempt,
                    "start_ms": at,
                    "end_ms": None,
                    "outcome": "in flight",
                    "reason": None,
                }
            )
            continue
        if isinstance(msg, m.StepSucceeded | m.StepAttemptFailed):
            step, outcome = (
                msg.step,
                ("succeeded" if isinstance(msg, m.StepSucceeded) else "failed"),
            )
            reason = getattr(msg, "reason", None)
            verdict = True
        elif (replied := REPLY_STEP.get(type(msg))) is not None:
            step, verdict = replied, False
            outcome = (
                "failed"
                if isinstance(msg, FailureReply)
                else (
                    "action required" if isinstance(msg, m.PaymentActionRequired) else "succeeded"
                )
            )
            reason = getattr(msg, "reason", None)
        else:
            continue
        attempts = by_step.get(step)
        if not attempts:
            continue
        current = attempts[-1]
        # The verdict decide recorded overrides what the reply alone suggests.
        if current["end_ms"] is None or verdict:
            current.update(end_ms=at, outcome=outcome, reason=reason or current["reason"])
    return [
        {
            "step": str(step),
            "kind": "compensation" if step in COMPENSATIONS else "forward",
            "attempts": attempts,
        }
        for step, attempts in by_step.items()
    ]


def _checkout(r: dict[str, Any]) -> JsonObject:
    started = r["started_at"]
    return {
        "checkout_id": r["checkout_id"],
        "customer_email": r["customer_email"],
        "status": r["status"],
        "total": r["total"] if r["total"] is not None else r["subtotal"],
        "currency": r["currency"],
        "started_at": started.isoformat() if isinstance(started, datetime) else None,
        "step": r["attention_step"] or r["failure_step"],
        "why": r["attention_reason"] or r["failure_reason"],
    }


def _prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _guard(fn: Callable[[], T]) -> T:
    """Vendor errors become the port's: one line for the console."""
    try:
        return fn()
    except Refused:
        raise
    except OpsError as e:
        raise OperationsUnavailable(str(e)) from e
    except KafkaException as e:
        raise OperationsUnavailable(f"broker: {e}") from e
    except psycopg.OperationalError as e:
        raise OperationsUnavailable(f"PostgreSQL: {str(e).strip().splitlines()[0]}") from e
