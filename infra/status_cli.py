"""`saga status`: the engine at a glance (infra/ops.py) — every processor's lag per topic, the
projector's progress, dead letters per DLQ (and how many were re-driven), and the circuit
breakers the live workers hold. A service that cannot be reached is one line and exit 1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.projections_cli import _needs_kafka, _settings


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _lag(n: int) -> str:
    return f"[yellow]{n}[/yellow]" if n else "0"


def register(app: typer.Typer, console: Console) -> None:
    @app.command()
    def status(
        partitions: Annotated[
            bool, typer.Option("--partitions", help="lag per partition, not only per topic")
        ] = False,
    ) -> None:
        """Processor lag, projection progress, dead letters and breaker states."""
        from infra.ops import OpsError, ops_status

        settings = _settings(console)
        bootstrap = _needs_kafka(settings, console)
        assert settings.database_url
        try:
            found = ops_status(
                bootstrap,
                settings.database_url,
                settings.redis_url,
                settings.kafka_isolation_level,
            )
        except OpsError as e:
            console.print(f"[red]{e}[/red]", soft_wrap=True)
            raise typer.Exit(1) from e

        lag = Table(title="processor lag (committed offset vs end of log)")
        columns = ["group", "topic", *(["partition", "committed", "end"] if partitions else [])]
        for column in [*columns, "lag"]:
            lag.add_column(column, justify="left" if column in ("group", "topic") else "right")
        for t in found.lag:
            if partitions:
                for p in t.partitions:
                    committed = "-" if p.committed is None else str(p.committed)
                    lag.add_row(
                        t.group, t.topic, str(p.partition), committed, str(p.high), _lag(p.lag)
                    )
            else:
                lag.add_row(t.group, t.topic, _lag(t.lag))
        console.print(lag)

        projections = Table(title="projections (applied offset vs end of log)")
        for column in ("projection", "topic", "lag"):
            projections.add_column(column, justify="right" if column == "lag" else "left")
        summed: dict[tuple[str, str], int] = {}
        for p in found.projections:
            summed[(p.group, p.topic)] = summed.get((p.group, p.topic), 0) + p.lag
        for (group, topic), n in summed.items():
            projections.add_row(group.removeprefix("projection:"), topic, _lag(n))
        console.print(projections if summed else "projections: none applied yet")

        dlq = Table(title="dead letters")
        for column in ("topic", "records", "re-driven", "waiting"):
            dlq.add_column(column, justify="left" if column == "topic" else "right")
        for d in found.dlq:
            dlq.add_row(d.topic, str(d.records), str(d.redriven), _lag(d.waiting))
        console.print(dlq if found.dlq else "dead letters: no DLQ topics")

        if not settings.redis_url:
            console.print("breakers: REDIS_URL is not set (workers publish breakers there)")
            return
        breakers = Table(title="circuit breakers (live workers)")
        for column in ("breaker", "state", "since (UTC)", "failures", "worker"):
            breakers.add_column(column)
        for b in found.breakers:
            state = b.state if b.state == "closed" else f"[red]{b.state}[/red]"
            breakers.add_row(b.breaker, state, _when(b.since_ms), str(b.fail_counter), b.instance)
        console.print(breakers if found.breakers else "breakers: no live worker published any")
