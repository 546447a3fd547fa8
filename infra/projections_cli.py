"""The projections' `saga` commands: `replay`, `status`.

Registered on the main app by infra/cli.py (`register(app, console)`); heavy imports stay inside
the commands so `saga --help` connects to nothing and imports little.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import typer
from rich.console import Console

from infra.settings import Settings, load_settings


def _settings(console: Console) -> Settings:
    from infra.settings import ConfigError

    try:
        settings = load_settings()
    except ConfigError as e:
        console.print(f"[red]config error:[/red] {e}")
        raise typer.Exit(2) from e
    if not settings.database_url:
        console.print("[red]DATABASE_URL is not set[/red] (start a stack with `saga up`)")
        raise typer.Exit(2)
    return settings


def _needs_kafka(settings: Settings, console: Console) -> str:
    if not settings.kafka_bootstrap_servers:
        console.print("[red]KAFKA_BOOTSTRAP_SERVERS is not set[/red] (start one with `saga up`)")
        raise typer.Exit(2)
    return settings.kafka_bootstrap_servers


def parse_timestamp(value: str) -> int:
    """Epoch milliseconds, or an ISO-8601 time (UTC when it names no zone)."""
    if value.isdigit():
        return int(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def register(app: typer.Typer, console: Console) -> None:
    @app.command()
    def replay(
        projection: str = typer.Option("checkouts", help="projection to rebuild"),
        from_beginning: bool = typer.Option(False, "--from-beginning", help="(the default)"),
        from_timestamp: str | None = typer.Option(
            None, help="epoch ms or ISO time: start each partition at this time"
        ),
        fresh: bool = typer.Option(False, help="ignore an interrupted shadow; start a new one"),
        keep_old: bool = typer.Option(False, help="keep the replaced schema as proj_retired_*"),
    ) -> None:
        """Rebuild a projection into a shadow schema, then swap it in atomically. Ctrl-C stops
        safely; running it again resumes the same shadow."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from events.serde import make_serde
        from projections.replay import PROJECTIONS, ReplayProgress
        from projections.replay import replay as run_replay

        if projection not in PROJECTIONS:
            console.print(f"[red]unknown projection {projection!r}[/red]; known: checkouts")
            raise typer.Exit(2)
        if from_beginning and from_timestamp:
            console.print("[red]--from-beginning and --from-timestamp exclude each other[/red]")
            raise typer.Exit(2)
        settings = _settings(console)
        bootstrap = _needs_kafka(settings, console)
        assert settings.database_url
        stop = threading.Event()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        columns: list[Any] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
            TextColumn("{task.fields[rate]:,.0f} events/s"),
            TextColumn("lag {task.fields[lag]:,}"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"replay {projection}", total=1, rate=0.0, lag=0)

            def show(p: ReplayProgress) -> None:
                bar.update(
                    task,
                    total=max(p.total, 1),
                    completed=max(p.total - p.remaining, 0),
                    rate=p.events_per_s,
                    lag=p.remaining,
                )

            report = run_replay(
                bootstrap=bootstrap,
                database_url=settings.database_url,
                serde=make_serde(settings.schema_registry_url),
                projection=projection,
                from_timestamp_ms=parse_timestamp(from_timestamp) if from_timestamp else None,
                fresh=fresh,
                on_progress=show,
                stop=stop,
                keep_old=keep_old,
            )
        verb = "resumed" if report.resumed else "built"
        console.print(f"{verb} {report.shadow}: {report.applied:,} events applied")
        if report.swapped:
            kept = f"; old schema kept as {report.retired}" if report.retired else ""
            console.print(f"[green]swapped in as the live {PROJECTIONS[projection]}[/green]{kept}")
        else:
            console.print("interrupted: run the same command again to resume")
