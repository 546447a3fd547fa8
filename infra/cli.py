"""`saga` — the operator's command line."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infra.embedded.process import ServiceError
from infra.embedded.stack import RunningStack, embedded_stack
from infra.identity import os_user
from infra.logs import configure_logging
from infra.settings import ConfigError, Settings, load_settings
from infra.topics import TopicReport

app = typer.Typer(help="Checkout saga engine", no_args_is_help=True, add_completion=False)
topics_app = typer.Typer(help="Kafka topics", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
stock_app = typer.Typer(help="Stock levels (the only way they change)", no_args_is_help=True)
app.add_typer(stock_app, name="stock")
db_app = typer.Typer(help="The database schema (one Alembic history)", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(width=max(Console().width, 140))


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        console.print(f"[red]config error:[/red] {e}")
        raise typer.Exit(2) from e


@contextlib.contextmanager
def _stack(
    settings: Settings, workdir: Path | None = None, durable: bool = False
) -> Iterator[RunningStack]:
    try:
        with embedded_stack(settings, workdir=workdir, durable=durable) as running:
            yield running
    except ServiceError as e:
        console.print(f"[red]embedded stack failed:[/red] {e}")
        raise typer.Exit(1) from e


def _print_urls(running: RunningStack) -> None:
    table = Table(title="Checkout saga stack")
    table.add_column("service")
    table.add_column("url")
    table.add_column("run by")
    for name, url in running.urls().items():
        table.add_row(name, url, "embedded" if name in running.started else "environment")
    console.print(table)
    console.print(f"kafka isolation level: {running.settings.kafka_isolation_level}")


DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / ".data"


def _print_topic_report(report: TopicReport) -> None:
    console.print(f"topics: created {len(report.created)}, already present {len(report.existing)}")
    for d in report.fixed:
        console.print(f"[green]fixed drift[/green] {d}")
    for d in report.drift:
        label = "[red]drift (error)[/red]" if d.error else "[yellow]drift[/yellow]"
        console.print(f"{label} {d}")
    if report.unchecked:
        console.print(
            f"[yellow]configs not described by the broker:[/yellow] {len(report.unchecked)}"
        )


def _ensure(settings: Settings, bootstrap: str, fix: bool = False) -> TopicReport:
    from infra.topics import ensure_topics

    return ensure_topics(
        bootstrap,
        settings.partitions,
        settings.replication_factor,
        min_insync_replicas=settings.min_insync_replicas,
        fix_drift=fix,
    )


ENV_FILE = "saga.env"


def _write_env_file(running: RunningStack, data_dir: Path) -> Path:
    """Every URL and secret a worker or the API needs, as `export` lines; private to the user
    (0600 from creation: it holds the JWT and webhook secrets)."""
    import os
    import shlex

    from infra.settings import to_environ

    values = to_environ(running.settings)
    values.setdefault("KAFKA_ISOLATION_LEVEL", running.settings.kafka_isolation_level)
    path = data_dir / ENV_FILE
    text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(values.items()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have been created with wider permissions
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option(help="where Kafka, PostgreSQL and Redis keep their data")
    ] = DEFAULT_DATA_DIR,
    fresh: bool = typer.Option(False, "--fresh", help="wipe the data directory first"),
) -> None:
    """Run the embedded stack in the foreground until Ctrl-C; data survives restarts."""
    import shutil

    settings = _settings()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    data_dir = data_dir.resolve()
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
        console.print(f"wiped {data_dir}")
    with _stack(settings, workdir=data_dir, durable=True) as running:
        assert running.settings.kafka_bootstrap_servers
        report = _ensure(settings, running.settings.kafka_bootstrap_servers)
        _print_urls(running)
        _print_topic_report(report)
        env_file = _write_env_file(running, data_dir)
        console.print(f"data directory: {data_dir}")
        console.print(f'environment for workers: eval "$(cat {env_file})"')
        console.print(
            "it sets KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL / REDIS_URL / STRIPE_API_BASE, "
            "KAFKA_ISOLATION_LEVEL and this directory's generated secrets (JWT_SECRET, "
            "STRIPE_WEBHOOK_SECRETS, STRIPE_API_KEY) to point workers and the API at this "
            "stack. Ctrl-C stops it."
        )
        stop.wait()
        console.print("stopping…")
    console.print("stopped; nothing left running.")


@topics_app.command("ensure")
def topics_ensure(
    fix: bool = typer.Option(False, "--fix", help="set drifted configs to the contract's values"),
) -> None:
    """Create the engine's topics (ARCHITECTURE.md §4) with their retention; report drift."""
    settings = _settings()
    if not settings.kafka_bootstrap_servers:
        console.print("[red]KAFKA_BOOTSTRAP_SERVERS is not set[/red] (or use `saga up`)")
        raise typer.Exit(2)
    report = _ensure(settings, settings.kafka_bootstrap_servers, fix)
    _print_topic_report(report)
    if report.has_errors:
        console.print(
            "[red]the event log or a DLQ would delete records;[/red] "
            "run `saga topics ensure --fix` or correct the topic configs"
        )
        raise typer.Exit(1)


def _database_url() -> str:
    settings = _settings()
    if not settings.database_url:
        console.print("[red]DATABASE_URL is not set[/red] (start one with `saga up`)")
        raise typer.Exit(2)
    return settings.database_url


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="target revision"),
) -> None:
    """Apply the migrations: every owned table and the read models (idempotent; every service
    also runs them at start, under the same advisory lock)."""
    from db.migrate import owned_revision, upgrade

    url = _database_url()
    before = owned_revision(url)
    after = upgrade(url, revision)
    if before == after:
        console.print(f"at revision {after} (nothing to do)")
    else:
        console.print(f"upgraded {before or 'an empty database'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """The revision the owned tables and the read models are at, and the newest this code
    knows (exit 1 if either is behind)."""
    from db.migrate import current_revision, head_revision, owned_revision

    url = _database_url()
    owned, read_models, head = owned_revision(url), current_revision(url), head_revision()
    console.print(
        f"owned tables: {owned or 'none'}  read models: {read_models or 'none'}  head: {head}"
    )
    if owned != head or read_models != head:
        console.print("[yellow]behind:[/yellow] run `saga db upgrade`")
        raise typer.Exit(1)


def _stock_store(settings: Settings) -> Any:
    from infra.adapters_wiring import stock_store

    if not settings.database_url:
        console.print("[red]DATABASE_URL is not set[/red] (start one with `saga up`)")
        raise typer.Exit(2)
    return stock_store(settings)


ActorOption = Annotated[
    str | None, typer.Option("--actor", help="who makes the change (default: the OS user)")
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="why, kept in the audit trail (saga stock history)")
]


def _set_levels(levels: dict[str, int], change: Any) -> None:
    store = _stock_store(_settings())
    try:
        store.set_stock(levels, change)
    except ValueError as e:  # below what is reserved: refused, nothing changed
        console.print(f"[red]refused:[/red] {e} (a level cannot go below the units reserved)")
        raise typer.Exit(1) from e
    for sku, units in sorted(levels.items()):
        console.print(f"{sku}: on hand {units}")
    console.print(f"audited as {change.actor}" + (f": {change.reason}" if change.reason else ""))


@stock_app.command("set")
def stock_set(sku: str, units: int, actor: ActorOption = None, reason: ReasonOption = None) -> None:
    """Set SKU's units on hand (refused below what is reserved); audited."""
    from adapters.inventory.seed import StockChange

    if units < 0:
        console.print("[red]refused:[/red] units must be >= 0")
        raise typer.Exit(2)
    _set_levels({sku: units}, StockChange(actor or os_user(), "set", reason))


@stock_app.command("load")
def stock_load(file: Path, actor: ActorOption = None, reason: ReasonOption = None) -> None:
    """Set levels from a JSON ({"SKU": n} or [{"sku","on_hand"}]) or CSV (sku,on_hand) file;
    all or nothing, audited with the file's path."""
    from adapters.inventory.seed import StockChange, load_stock_file

    try:
        levels = load_stock_file(file)
    except (OSError, ValueError) as e:
        console.print(f"[red]cannot load {file}:[/red] {e}")
        raise typer.Exit(2) from e
    change = StockChange(actor or os_user(), "load", reason, str(file.resolve()))
    _set_levels(levels, change)


@stock_app.command("history")
def stock_history(
    sku: Annotated[str | None, typer.Argument()] = None,
    limit: int = typer.Option(50, help="newest N changes"),
) -> None:
    """Operator changes of on-hand levels, newest first: who, when, before -> after, reserved
    at that moment, reason and source file."""
    from datetime import UTC, datetime

    entries = _stock_store(_settings()).stock_history(sku, limit)
    if not entries:
        console.print(f"no stock changes recorded{f' for {sku}' if sku else ''}")
        raise typer.Exit(1 if sku else 0)
    table = Table(title="stock history")
    for column in ("at (UTC)", "actor", "command", "sku", "before", "after", "reserved"):
        table.add_column(column)
    table.add_column("reason")
    table.add_column("source", overflow="fold")
    for e in entries:
        at = datetime.fromtimestamp(e.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        before = "new" if e.on_hand_before is None else str(e.on_hand_before)
        table.add_row(
            at,
            e.actor,
            e.command,
            e.sku,
            before,
            str(e.on_hand_after),
            str(e.reserved),
            e.reason or "",
            e.source or "",
        )
    console.print(table)


@stock_app.command("show")
def stock_show(sku: Annotated[str | None, typer.Argument()] = None) -> None:
    """Units on hand, reserved and available, for one SKU or all."""
    levels = _stock_store(_settings()).stock_levels()
    if sku is not None:
        if sku not in levels:
            console.print(f"[red]unknown SKU[/red] {sku}")
            raise typer.Exit(1)
        levels = {sku: levels[sku]}
    table = Table(title="stock")
    for column in ("sku", "on hand", "reserved", "available"):
        table.add_column(column)
    for name, (on_hand, reserved) in levels.items():
        table.add_row(name, str(on_hand), str(reserved), str(on_hand - reserved))
    console.print(table)


@app.command()
def worker(
    role: str = typer.Option(
        ...,
        help="orchestrator | inventory | tax | shipping | payment | notification | notifier"
        " | fulfilment | projector | adapters (inventory, tax, shipping and payment in one)",
    ),
    instance: str = typer.Option("0", help="stable worker slot id (fences zombies)"),
) -> None:
    """Run one processor until SIGINT/SIGTERM. Scale by starting more with other --instance."""
    from infra.bootstrap import build_processor
    from infra.breaker_states import publish_breakers
    from infra.metrics import Metrics, serve_metrics, watch_breakers

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    # `kill -USR1 <pid>` writes every thread's stack to stderr: how an operator (or the chaos
    # suite) sees where a worker that is alive but not moving is waiting.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if role == "projector":  # a sink into PostgreSQL, not a Kafka->Kafka processor
        from infra.workers.projector import run_projector

        run_projector(settings)
        return
    # Breakers live in this process: publish their states for `saga status` and the console.
    publisher = publish_breakers(settings.redis_url, role)
    metrics = Metrics(process=True)
    unwatch = watch_breakers(metrics)
    server = None
    try:
        try:
            processor = build_processor(role, settings, instance_id=instance, metrics=metrics)
        except ValueError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(2) from e
        if settings.metrics_port is not None:
            server = serve_metrics(metrics, settings.metrics_host, settings.metrics_port)
            logging.getLogger("infra.metrics").info(
                "metrics on %s", server.url, extra={"metrics_url": server.url}
            )
        processor.install_signal_handlers()
        processor.run()
    finally:
        unwatch()
        if server is not None:
            server.close()
        if publisher is not None:
            publisher.stop()


@app.command()
def analytics(
    source_topic: Annotated[
        str | None, typer.Option(help="read this topic instead of checkout.events (a copy)")
    ] = None,
    alerts_topic: Annotated[str | None, typer.Option(help="instead of ops.alerts")] = None,
) -> None:
    """Live checkout analytics (faust-streaming, off the money path): windows of
    checkout.events into checkout_metrics_minutely / _quarter_hourly, JSON at
    http://ANALYTICS_WEB_HOST:ANALYTICS_WEB_PORT/analytics, threshold alerts to ops.alerts."""
    import faust

    from db.migrate import upgrade
    from infra.analytics_wiring import build_analytics_app

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    overrides = {
        k: v for k, v in {"source_topic": source_topic, "alerts_topic": alerts_topic}.items() if v
    }
    try:
        faust_app = build_analytics_app(settings, **overrides)
    except ConfigError as e:
        console.print(f"[red]{e}[/red]", soft_wrap=True)
        raise typer.Exit(2) from e
    assert settings.database_url
    upgrade(settings.database_url)  # as every service does at start: its tables exist
    faust_app.finalize()
    # faust's Worker owns the event loop and SIGINT/SIGTERM (a clean stop commits offsets).
    worker = faust.Worker(faust_app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()


@app.command()
def inspect(checkout_id: str) -> None:
    """A checkout's event history as a timeline, read from checkout.events."""
    from events.serde import make_serde
    from infra.inspect import inspect_checkout, status_of, step_summaries, timeline

    settings = _settings()
    if not settings.kafka_bootstrap_servers:
        console.print("[red]KAFKA_BOOTSTRAP_SERVERS is not set[/red] (start one with `saga up`)")
        raise typer.Exit(2)
    found = inspect_checkout(
        settings.kafka_bootstrap_servers,
        make_serde(settings.schema_registry_url),
        checkout_id,
        isolation_level=settings.kafka_isolation_level,
    )
    history = found.history
    if not history:
        console.print(f"no events for checkout {checkout_id} (read {', '.join(found.read)})")
        raise typer.Exit(1)
    console.print(f"checkout {checkout_id}: [bold]{status_of(history)}[/bold]")
    if found.snapshot is not None:
        behind = history[-1].message_id != found.snapshot_last_event
        console.print(
            f"snapshot: {found.snapshot.status}"
            + (" (behind the events: they decide)" if behind else " (up to date)")
        )
    events = Table(title="timeline")
    for column in ("+ms", "event", "step", "attempt", "detail"):
        events.add_column(column)
    for row in timeline(history):
        attempt = "" if row.attempt is None else str(row.attempt)
        events.add_row(str(row.at_ms), row.event, row.step, attempt, row.detail)
    console.print(events)
    steps = Table(title="steps")
    for column in ("step", "outcome", "attempts", "duration ms"):
        steps.add_column(column)
    for s in step_summaries(history):
        duration = "" if s.duration_ms is None else str(s.duration_ms)
        steps.add_row(s.step, s.outcome, str(s.attempts), duration)
    console.print(steps)


@app.command()
def demo(
    checkouts: int = typer.Option(5, min=4, help="how many checkouts to run"),
    serve: bool | None = typer.Option(
        None,
        "--serve/--no-serve",
        help="keep the engine running afterwards (console, CLI) until Ctrl-C; "
        "default: when run from a terminal",
    ),
) -> None:
    """Start the embedded stack and the engine (as `saga run` runs it), run checkouts end to end
    (completed, compensated, parked, a dead letter) and print where to look at them."""
    from infra.demo import run_demo

    settings = _settings()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    keep = sys.stdin.isatty() and sys.stdout.isatty() if serve is None else serve
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def wait_for_ctrl_c() -> None:
        console.print("[bold]the engine keeps running: open the console above; Ctrl-C stops all")
        stop.wait()
        console.print("stopping the engine, then the stack")

    with _stack(settings) as running:
        _print_urls(running)
        ok = run_demo(
            running.settings,
            checkouts,
            console,
            workdir=running.workdir,
            serve=wait_for_ctrl_c if keep else None,
        )
    raise typer.Exit(0 if ok else 1)


@app.command()
def bench(
    only: str = typer.Option(
        "",
        help="run one section alone: rebuild (orchestrator rebuild time and RSS, ADR 0014), "
        "payments (authorize latency with 0 and 10,000 PaymentIntents, ADR 0003)",
    ),
) -> None:
    """Every benchmark section in one run on the embedded stack; table + bench/results/."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    if only == "rebuild":
        from bench import rebuild

        rebuild.report(rebuild.run([10_000, 100_000]))
        return
    if only == "payments":
        from bench import payments

        payments.report(payments.run())
        return
    if only:
        console.print(f"[red]unknown section {only!r}[/red] (known: rebuild, payments)")
        raise typer.Exit(2)
    from bench.run import run

    run(console)


def _register_projections() -> None:
    """`saga replay`, `saga status` (infra/projections_cli.py), `saga dlq` (infra/dlq_cli.py),
    `saga checkouts list`, `saga checkout retry` (infra/checkouts_cli.py), `saga run`,
    `saga env` (infra/run_cli.py)."""
    from infra import checkouts_cli, dlq_cli, run_cli, status_cli
    from infra.projections_cli import register

    register(app, console)
    status_cli.register(app, console)
    dlq_cli.register(app, console)
    checkouts_cli.register(app, console)
    run_cli.register(app, console, data_dir=DEFAULT_DATA_DIR, env_name=ENV_FILE)


_register_projections()


@app.command("api")
def api_command() -> None:
    """Run the HTTP API (uvicorn) on API_HOST:API_PORT against the configured services."""
    import uvicorn

    from api.app import create_app
    from infra.api_wiring import MissingServiceError, build_api_deps

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        deps = build_api_deps(settings)
    except (MissingServiceError, ConfigError) as e:
        console.print(f"[red]{e}[/red]", soft_wrap=True)
        raise typer.Exit(2) from e
    # log_config=None: uvicorn's loggers propagate to ours (JSON like every other line) instead
    # of getting handlers of their own.
    uvicorn.run(
        create_app(deps),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        log_config=None,
    )


token_app = typer.Typer(help="JWTs for operators and admins", no_args_is_help=True)
app.add_typer(token_app, name="token")


def parse_duration(text: str) -> int:
    """Seconds from `90`, `90s`, `15m`, `12h` or `7d`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    factor = units.get(raw[-1:], 0)
    number = raw[:-1] if factor else raw
    if not factor:
        factor = 1
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"expected a positive duration like 900, 15m, 12h or 7d, got {text!r}")
    return int(number) * factor


MAX_TOKEN_TTL_S = 30 * 86400  # a token cannot be revoked: keep its lifetime bounded


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., help="operator | admin | storefront"),
    tenant: str | None = typer.Option(None, help="the tenant (required for a storefront token)"),
    ttl: str = typer.Option("1h", help="lifetime: 900, 15m, 12h, 7d (at most 30d)"),
    subject: str | None = typer.Option(None, "--sub", help="who the token is for (audit log)"),
    env_file: Annotated[
        Path,
        typer.Option(help="`saga up`'s env file, read when the environment sets no JWT_SECRET"),
    ] = DEFAULT_DATA_DIR / ENV_FILE,
) -> None:
    """Mint an HS256 token the API accepts, signed with JWT_SECRET; prints only the token."""
    import getpass
    import time

    from api.auth import ROLES, make_token
    from infra.settings import require

    errors = Console(stderr=True)
    try:
        if role not in ROLES:
            raise ValueError(f"--role must be one of {', '.join(ROLES)}")
        if role == "storefront" and not tenant:
            raise ValueError("a storefront token needs --tenant")
        seconds = parse_duration(ttl)
        if seconds > MAX_TOKEN_TTL_S:
            raise ValueError(f"--ttl {ttl!r} is longer than 30d")
        # The environment first; without JWT_SECRET there, the data directory's env file (what
        # `saga up` wrote) fills it, so an operator on the same machine needs no export.
        settings = load_settings()
        if not settings.jwt_secret:
            settings = load_settings(env_file=env_file)
        require(settings, "jwt_secret", who="`saga token create`")
    except (ValueError, OSError) as e:  # ConfigError is a ValueError
        errors.print(f"[red]{e}[/red]", soft_wrap=True)
        raise typer.Exit(2) from e
    assert settings.jwt_secret
    token = make_token(
        settings.jwt_secret,
        sub=subject or f"{getpass.getuser()}-cli",
        role=role,
        exp=int(time.time()) + seconds,
        tenant=tenant,
    )
    print(token)


api_key_app = typer.Typer(help="Storefront API keys", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")


@api_key_app.command("create")
def api_key_create(
    tenant: str = typer.Option(..., help="the storefront's tenant id"),
    name: str = typer.Option("default", help="a label for the key"),
) -> None:
    """Create a storefront API key; the key is printed once and stored only as a hash."""
    import psycopg

    from api.keys import create_api_key
    from db.migrate import upgrade

    settings = _settings()
    if not settings.database_url:
        console.print("[red]DATABASE_URL is not set[/red] (start one with `saga up`)")
        raise typer.Exit(2)
    upgrade(settings.database_url)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        key = create_api_key(conn, tenant, name)
    console.print(f"API key for tenant {tenant!r} (shown once, store it now):")
    print(key)


CONSOLE_TTL_S = 8 * 3600  # a working day; the token cannot be revoked, so not longer


@app.command("console-url")
def console_url(
    ttl: str = typer.Option("8h", help="token lifetime: 900, 15m, 8h (at most 30d)"),
    subject: str | None = typer.Option(None, "--sub", help="who the token is for (audit log)"),
    base: str | None = typer.Option(None, help="the API's base URL (default: API_HOST:API_PORT)"),
    env_file: Annotated[
        Path,
        typer.Option(help="`saga up`'s env file, read when the environment sets no JWT_SECRET"),
    ] = DEFAULT_DATA_DIR / ENV_FILE,
) -> None:
    """Print the operator console's URL with a short-lived operator token in its fragment
    (`/console#token=...`: browsers never send a fragment to the server)."""
    import getpass
    import time

    from api.auth import make_token
    from infra.settings import require

    errors = Console(stderr=True)
    try:
        seconds = parse_duration(ttl)
        if seconds > MAX_TOKEN_TTL_S:
            raise ValueError(f"--ttl {ttl!r} is longer than 30d")
        settings = load_settings()
        if not settings.jwt_secret:
            settings = load_settings(env_file=env_file)
        require(settings, "jwt_secret", who="`saga console-url`")
    except (ValueError, OSError) as e:  # ConfigError is a ValueError
        errors.print(f"[red]{e}[/red]", soft_wrap=True)
        raise typer.Exit(2) from e
    assert settings.jwt_secret
    token = make_token(
        settings.jwt_secret,
        sub=subject or f"{getpass.getuser()}-console",
        role="operator",
        exp=int(time.time()) + seconds,
    )
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    root = (base or f"http://{host}:{settings.api_port}").rstrip("/")
    print(f"{root}/console#token={token}")


if __name__ == "__main__":
    app()
