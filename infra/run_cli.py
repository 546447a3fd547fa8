"""`saga run` (the whole engine, supervised: infra/supervisor.py) and `saga env` (the
environment `saga up` wrote, for `eval`). Registered on the main app by infra/cli.py."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from events.topics import SAGA_ADAPTERS
from infra.bootstrap import ADAPTERS_ROLE, ROLES

# Every role the engine needs. The notification adapter is not among them: nothing sends it
# commands yet and it is wired only with an email transport (infra/adapters_wiring.py).
# The adapters run one worker each here; `adapters` (all four in one) is the alternative:
# `--roles orchestrator,adapters,notifier,fulfilment,projector`.
ALL_ROLES = (*(r for r in ROLES if r not in ("notification", ADAPTERS_ROLE)), "projector")
RUNNABLE = (*ALL_ROLES, ADAPTERS_ROLE)


def _json_say(text: str) -> None:
    """The supervisor's own lines, shaped like its children's JSON lines."""
    line = {
        "process": "supervisor",
        "event": text,
        "level": "info",
        "logger": "infra.supervisor",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    print(json.dumps(line), flush=True)


def register(app: typer.Typer, console: Console, *, data_dir: Path, env_name: str) -> None:
    default_env = data_dir / env_name

    @app.command("run")
    def run_engine(
        roles: Annotated[
            str,
            typer.Option(
                help=f"comma list of roles, or all: {', '.join(ALL_ROLES)}"
                f" ({ADAPTERS_ROLE}: inventory, tax, shipping and payment in one worker)"
            ),
        ] = "all",
        instances: Annotated[int, typer.Option(min=1, max=64, help="instances of each role")] = 1,
        instance_offset: Annotated[
            int,
            typer.Option(min=0, help="first instance id: another machine takes its own range"),
        ] = 0,
        api: Annotated[bool, typer.Option("--api/--no-api", help="also run the HTTP API")] = True,
        analytics: Annotated[
            bool | None,
            typer.Option(
                "--analytics/--no-analytics",
                help="also run `saga analytics` (one process); default: with --roles all",
            ),
        ] = None,
        env_file: Annotated[
            Path, typer.Option(help="`saga up`'s env file; the environment overrides it")
        ] = default_env,
    ) -> None:
        """Every worker role (and the API) as supervised child processes; a crashed child is
        restarted with backoff; Ctrl-C stops them all, nothing is left running."""
        from infra.settings import ConfigError, child_environ, load_settings, parse_env_file
        from infra.supervisor import Supervisor, specs

        chosen = list(ALL_ROLES) if roles == "all" else [r.strip() for r in roles.split(",")]
        unknown = [r for r in chosen if r not in RUNNABLE]
        if unknown or not chosen:
            console.print(
                f"[red]unknown role {unknown[0] if unknown else '(none)'}[/red] "
                f"(one of {', '.join(RUNNABLE)}, or all)"
            )
            raise typer.Exit(2)
        both = [r for r in chosen if r in SAGA_ADAPTERS]
        if ADAPTERS_ROLE in chosen and both:
            # Two consumer groups on one topic: every request would be answered twice.
            console.print(
                f"[red]{ADAPTERS_ROLE} already serves {', '.join(both)}[/red]: choose one or"
                " the other"
            )
            raise typer.Exit(2)
        try:
            settings = load_settings(env_file=env_file)
        except ConfigError as e:
            console.print(f"[red]config error:[/red] {e}", soft_wrap=True)
            raise typer.Exit(2) from e
        if not settings.kafka_bootstrap_servers:
            console.print(
                "[red]KAFKA_BOOTSTRAP_SERVERS is not set[/red] "
                f"(start a stack with `saga up`, or name its --env-file; looked in {env_file})"
            )
            raise typer.Exit(2)
        file_values = parse_env_file(env_file) if env_file.exists() else {}
        env = {**file_values, **child_environ()}  # what the caller exports wins, as in Settings
        # Children write to our pipe, never a terminal: "auto" is decided here, for all of them.
        fmt = settings.log_format
        if fmt == "auto":
            fmt = "console" if sys.stdout.isatty() else "json"
        env["LOG_FORMAT"] = fmt
        ids = list(range(instance_offset, instance_offset + instances))
        with_analytics = roles == "all" if analytics is None else analytics
        children = specs(
            chosen, ids, api=api, metrics_port=settings.metrics_port, analytics=with_analytics
        )
        say = _json_say if fmt == "json" else lambda text: console.print(f"[bold]{text}")
        supervisor = Supervisor(children, env, say=say, json_lines=fmt == "json")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: supervisor.stop())
        say(
            f"running {len(children)} processes: {', '.join(c.name for c in children)} "
            "(Ctrl-C stops them all)"
        )
        supervisor.run()
        say("stopped; nothing left running.")

    @app.command("env")
    def env_command(
        data_dir_option: Annotated[
            Path, typer.Option("--data-dir", help="the `saga up` data directory")
        ] = data_dir,
    ) -> None:
        """Print the environment `saga up` wrote (URLs and secrets): eval "$(saga env)"."""
        path = data_dir_option / env_name
        try:
            text = path.read_text()
        except FileNotFoundError:
            console.print(f"[red]no {env_name} in {data_dir_option}[/red]: start `saga up` there")
            raise typer.Exit(1) from None
        print(text, end="")
