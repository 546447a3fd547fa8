"""`CheckoutReads` on the projections' tables (projections.queries), through a connection pool."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.keys import Connect
from api.ports import CheckoutRecord, NextActionRecord, OrderRecord, StepRecord


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class ProjectionReads:
    def __init__(self, connect: Connect, *, schema: str | None = None) -> None:
        self._connect = connect
        self._schema = schema

    def _schema_kw(self) -> dict[str, str]:
        return {} if self._schema is None else {"schema": self._schema}

    def checkout(self, checkout_id: str) -> CheckoutRecord | None:
        from projections.queries import get_checkout

        with self._connect() as conn:
            view = get_checkout(conn, checkout_id, **self._schema_kw())
        if view is None:
            return None
        return CheckoutRecord(
            checkout_id=view.checkout_id,
            tenant_id=view.tenant_id,
            status=str(view.status),
            currency=view.currency,
            subtotal=view.subtotal,
            tax=view.tax,
            shipping=view.shipping,
            total=view.total,
            order_id=view.order_id,
            failure_step=view.failure_step,
            failure_reason=view.failure_reason,
            steps=tuple(
                StepRecord(
                    step=str(s.step),
                    status=str(s.status),
                    attempts=int(s.attempts),
                    started_at=_iso(s.started_at),
                    finished_at=_iso(s.finished_at),
                    last_error=s.last_error,
                )
                for s in view.steps
            ),
            last_event_id=view.last_event_id,
            last_event_type=view.last_event_type,
            last_event_at=_iso(view.last_event_at),
            events_applied=int(view.events_applied),
            next_action=None
            if view.next_action is None
            else NextActionRecord(
                provider=view.next_action.provider,
                kind=view.next_action.kind,
                redirect_url=view.next_action.redirect_url,
                client_secret=view.next_action.client_secret,
            ),
        )

    def order(self, order_id: str) -> OrderRecord | None:
        from projections.queries import get_order

        with self._connect() as conn:
            view = get_order(conn, order_id, **self._schema_kw())
        if view is None:
            return None
        return OrderRecord(
            order_id=view.order_id,
            checkout_id=view.checkout_id,
            tenant_id=view.tenant_id,
            currency=view.currency,
            captured=int(view.captured),
            refunded=int(view.refunded),
        )
