"""`saga checkouts list` and `saga checkout retry`: finding failed or parked checkouts, and
resuming a parked saga once its cause is fixed.

The list reads the checkouts projection (PostgreSQL). A retry is a command the saga itself
understands (`RetryCheckout` on checkout.commands, acknowledged by the broker): the saga checks
that it is parked, records `CheckoutResumed` with who and why, and retries the compensation that
kept failing with a fresh attempt budget; a saga that is not parked records a `CommandRejected`.
The operator's act is also recorded in `audit_log` (action `checkout.retry`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infra.identity import os_user
from infra.ops import RETRY_AUDIT_ACTION as AUDIT_ACTION  # noqa: F401  (tests import it here)
from infra.projections_cli import _needs_kafka, _settings, parse_timestamp
from saga.state import TERMINAL_STATUSES, Status

STATUSES = ", ".join(s.value for s in Status)
# Where a resumed saga comes to rest: done, or parked again.
SETTLED = frozenset(s.value for s in TERMINAL_STATUSES)


def _rows(database_url: str, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(query, params).fetchall())


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def register(app: typer.Typer, console: Console) -> None:
    checkouts_app = typer.Typer(help="Checkouts as the projections see them", no_args_is_help=True)
    app.add_typer(checkouts_app, name="checkouts")
    checkout_app = typer.Typer(help="Act on one checkout", no_args_is_help=True)
    app.add_typer(checkout_app, name="checkout")

    @checkouts_app.command("list")
    def checkouts_list(
        status: Annotated[
            list[str] | None, typer.Option(help=f"repeatable; one of {STATUSES}")
        ] = None,
        since: Annotated[
            str | None, typer.Option(help="started at or after: ISO-8601 (UTC) or epoch ms")
        ] = None,
        tenant: Annotated[str | None, typer.Option(help="one tenant")] = None,
        limit: Annotated[int, typer.Option(help="newest N")] = 50,
    ) -> None:
        """Checkouts, newest first, with why they failed or are parked."""
        wanted = [s.upper() for s in status or []]
        unknown = [s for s in wanted if s not in Status.__members__]
        if unknown:
            console.print(f"[red]unknown status {unknown[0]}[/red] (one of {STATUSES})")
            raise typer.Exit(2)
        try:
            since_ms = parse_timestamp(since) if since else None
        except ValueError as e:
            console.print(f"[red]--since {since!r} is not a time[/red] ({e})")
            raise typer.Exit(2) from e
        settings = _settings(console)
        assert settings.database_url
        query = (
            "SELECT checkout_id, tenant_id, status, total, subtotal, currency, started_at,"
            " last_event_at, failure_step, failure_reason, attention_step, attention_reason"
            " FROM projections.checkouts WHERE true"
        )
        params: list[Any] = []
        if wanted:
            query += " AND status = ANY(%s)"
            params.append(wanted)
        if since_ms is not None:
            query += " AND started_at >= to_timestamp(%s / 1000.0)"
            params.append(since_ms)
        if tenant:
            query += " AND tenant_id = %s"
            params.append(tenant)
        query += " ORDER BY started_at DESC, checkout_id LIMIT %s"
        params.append(limit)
        rows = _rows(settings.database_url, query, tuple(params))
        if not rows:
            console.print("no checkouts match")
            return
        table = Table(title=f"checkouts ({len(rows)}{'+' if len(rows) == limit else ''})")
        table.add_column("checkout", no_wrap=True)
        for column in ("tenant", "status", "total", "started (UTC)", "last event (UTC)"):
            table.add_column(column)
        table.add_column("step")
        table.add_column("why", overflow="fold", ratio=1)
        for r in rows:
            amount = r["total"] if r["total"] is not None else r["subtotal"]
            step = r["attention_step"] or r["failure_step"] or ""
            why = r["attention_reason"] or r["failure_reason"] or ""
            table.add_row(
                r["checkout_id"],
                r["tenant_id"],
                r["status"],
                f"{amount} {r['currency']}",
                _when(r["started_at"]),
                _when(r["last_event_at"]),
                step,
                why,
            )
        console.print(table)

    @checkout_app.command("retry")
    def checkout_retry(
        checkout_id: str,
        reason: Annotated[str, typer.Option(help="what was fixed (kept in the saga's history)")],
        actor: Annotated[str | None, typer.Option(help="who (default: the OS user)")] = None,
        wait: Annotated[float, typer.Option(help="seconds to wait for the saga's answer")] = 30,
    ) -> None:
        """Resume a parked (NEEDS_ATTENTION) saga once its cause is fixed: it retries the
        compensation that kept failing. Audited."""
        from infra.ops import OpsError, Refused, send_retry

        settings = _settings(console)
        assert settings.database_url
        bootstrap = _needs_kafka(settings, console)
        who = actor or os_user()
        before = _status(settings.database_url, checkout_id)
        if before is not None and before["status"] == Status.NEEDS_ATTENTION.value:
            console.print(
                f"parked at {before['attention_step']}: {before['attention_reason']}",
                soft_wrap=True,
            )
        try:
            # The same path the console's Retry button takes (infra/ops.py).
            send_retry(
                bootstrap,
                settings.schema_registry_url,
                settings.database_url,
                checkout_id,
                actor=who,
                reason=reason,
            )
        except Refused as e:
            console.print(f"[red]{e}[/red]", soft_wrap=True)
            raise typer.Exit(2 if str(e).startswith("refused") else 1) from e
        except OpsError as e:
            console.print(f"[red]{e}[/red]", soft_wrap=True)
            raise typer.Exit(1) from e
        assert before is not None
        console.print(f"RetryCheckout sent for {checkout_id}; audited as {who}")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            now = _status(settings.database_url, checkout_id)
            moved = now is not None and now["last_event_id"] != before["last_event_id"]
            if now is not None and moved and now["status"] in SETTLED:
                console.print(f"checkout {checkout_id} is now [bold]{now['status']}[/bold]")
                if now["status"] == Status.NEEDS_ATTENTION.value:
                    console.print(f"parked again: {now['attention_reason']}", soft_wrap=True)
                    raise typer.Exit(1)
                return
            time.sleep(0.2)
        console.print(f"no answer from the saga within {wait:g}s: see `saga inspect {checkout_id}`")


def _status(database_url: str, checkout_id: str) -> dict[str, Any] | None:
    rows = _rows(
        database_url,
        "SELECT status, attention_step, attention_reason, last_event_id"
        " FROM projections.checkouts WHERE checkout_id = %s",
        (checkout_id,),
    )
    return rows[0] if rows else None
