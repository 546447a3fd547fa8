"""`saga dlq list|show|redrive`: dead letters for operators (infra/dlq.py).

Registered on the main app by infra/cli.py. Every mistake (an unknown id, a missing setting, a
dead letter already re-driven) is one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.dlq import DeadLetter, DeadLetterError, Redrive
from infra.identity import os_user
from infra.projections_cli import _needs_kafka, _settings

ERROR_WIDTH = 100


def _when(ms: int | None) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _origin(letter: DeadLetter) -> str:
    return f"{letter.topic}[{letter.partition}]@{letter.offset}"


def _redriven(done: list[Redrive]) -> str:
    if not done:
        return ""
    last = done[-1]
    times = f" (x{len(done)})" if len(done) > 1 else ""
    return f"{last.actor} {_when(last.at_ms)}{times}"


def register(app: typer.Typer, console: Console) -> None:
    dlq_app = typer.Typer(help="Dead letters: list, read, re-drive", no_args_is_help=True)
    app.add_typer(dlq_app, name="dlq")

    def fail(e: DeadLetterError, code: int = 1) -> typer.Exit:
        console.print(f"[red]{e}[/red]", soft_wrap=True)
        return typer.Exit(code)

    def load(topic: str | None) -> tuple[str, str, list[DeadLetter], dict[str, list[Redrive]]]:
        from infra.dlq import dlq_topics, read_dead_letters, redrives

        settings = _settings(console)
        bootstrap = _needs_kafka(settings, console)
        assert settings.database_url
        try:
            topics = dlq_topics(bootstrap, topic)
            letters = read_dead_letters(
                bootstrap, topics, isolation_level=settings.kafka_isolation_level
            )
        except DeadLetterError as e:
            raise fail(e) from e
        return bootstrap, settings.database_url, letters, redrives(settings.database_url)

    @dlq_app.command("list")
    def dlq_list(
        topic: Annotated[
            str | None, typer.Option(help="one topic (or its .dlq); default: every DLQ")
        ] = None,
        pending: Annotated[bool, typer.Option(help="only those never re-driven")] = False,
        key: Annotated[
            str | None, typer.Option(help="only this record key (e.g. one checkout's id)")
        ] = None,
        limit: Annotated[int, typer.Option(help="newest N")] = 100,
    ) -> None:
        """Dead letters, newest last: id, where from, type, key, when, who, re-driven, why."""
        _, _, letters, done = load(topic)
        shown = [
            d
            for d in letters
            if not (pending and done.get(d.id))
            and (key is None or (d.key or b"").decode(errors="replace") == key)
        ]
        shown.sort(key=lambda d: (d.failed_at_ms or d.timestamp_ms, d.id))
        if not shown:
            console.print("no dead letters" + (" waiting" if pending else ""))
            return
        table = Table(title=f"dead letters ({len(shown)})")
        # Ids and keys stay whole (operators copy them into `show`/`redrive`); the reason wraps.
        for column in ("id", "key", "type"):
            table.add_column(column, no_wrap=True)
        for column in ("from", "failed (UTC)", "processor", "re-driven"):
            table.add_column(column, overflow="fold")
        table.add_column("reason", overflow="fold", ratio=1)
        for d in shown[-limit:]:
            error = d.error if len(d.error) <= ERROR_WIDTH else d.error[: ERROR_WIDTH - 1] + "…"
            table.add_row(
                d.id,
                (d.key or b"").decode(errors="replace"),
                d.message_type or "?",
                _origin(d),
                _when(d.failed_at_ms),
                d.processor,
                _redriven(done.get(d.id, [])),
                error,
            )
        console.print(table)

    @dlq_app.command("show")
    def dlq_show(dead_letter_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
        """One dead letter: its full reason, headers and the decoded message."""
        from events.serde import make_serde
        from infra.dlq import find, parse_id

        try:
            topic, _, _ = parse_id(dead_letter_id)
        except DeadLetterError as e:
            raise fail(e, 2) from e
        _, _, letters, done = load(topic)
        try:
            letter = find(letters, dead_letter_id)
        except DeadLetterError as e:
            raise fail(e) from e
        console.print(f"[bold]{letter.id}[/bold] from {_origin(letter)}")
        console.print(f"type: {letter.message_type or '?'}   key: {(letter.key or b'').decode()}")
        console.print(f"failed: {_when(letter.failed_at_ms)} UTC in {letter.processor}")
        console.print(f"reason: {letter.error}", soft_wrap=True)
        for earlier in done.get(letter.id, []):
            when = _when(earlier.at_ms)
            console.print(f"re-driven by {earlier.actor} at {when}: {earlier.reason}")
        headers = Table(title="headers")
        headers.add_column("name")
        headers.add_column("value", overflow="fold")
        for name, value in letter.headers:
            headers.add_row(name, value.decode(errors="replace"))
        console.print(headers)
        settings = _settings(console)
        try:
            envelope = make_serde(settings.schema_registry_url).decode(
                letter.value or b"", letter.topic
            )
        except Exception as e:  # undecodable is a common reason to be here: say so, go on
            console.print(f"message: not decodable ({type(e).__name__}: {e})", soft_wrap=True)
            preview = (letter.value or b"")[:200]
            console.print(f"raw ({len(letter.value or b'')} bytes): {preview!r}", soft_wrap=True)
            return
        console.print(f"message id: {envelope.message_id}   producer: {envelope.producer}")
        console.print(repr(envelope.message), soft_wrap=True)

    @dlq_app.command("redrive")
    def dlq_redrive(
        reason: Annotated[str, typer.Option(help="why it can be re-driven now (audited)")],
        dead_letter_id: Annotated[
            list[str] | None, typer.Option("--id", help="a dead letter id (repeatable)")
        ] = None,
        all_: Annotated[
            bool, typer.Option("--all", help="every dead letter never re-driven (with --topic)")
        ] = False,
        topic: Annotated[str | None, typer.Option(help="limit --all to one topic")] = None,
        again: Annotated[bool, typer.Option(help="re-drive even if it was before")] = False,
        actor: Annotated[str | None, typer.Option(help="who (default: the OS user)")] = None,
    ) -> None:
        """Put dead letters back on their topic (same key, value and partition, provenance in
        redrive.* headers), each recorded in audit_log; refused twice without --again."""
        from infra.dlq import find, parse_id, redrive

        ids = dead_letter_id or []
        if bool(ids) == all_:
            raise fail(DeadLetterError("name dead letters with --id, or pass --all"), 2)
        try:
            topics = {parse_id(i)[0] for i in ids}
        except DeadLetterError as e:
            raise fail(e, 2) from e
        only = topic if all_ else (topics.pop() if len(topics) == 1 else None)
        bootstrap, database_url, letters, done = load(only)
        try:
            chosen = (
                [d for d in letters if not done.get(d.id)]
                if all_
                else [find(letters, i) for i in ids]
            )
        except DeadLetterError as e:
            raise fail(e) from e
        if not chosen:
            console.print("nothing to re-drive")
            return
        who = actor or os_user()
        failed = 0
        for letter in chosen:
            try:
                redrive(bootstrap, database_url, letter, actor=who, reason=reason, again=again)
            except DeadLetterError as e:
                failed += 1
                console.print(f"[red]not re-driven:[/red] {e}", soft_wrap=True)
                continue
            console.print(f"re-driven {letter.id} -> {_origin(letter)} ({letter.message_type})")
        console.print(f"{len(chosen) - failed} re-driven, {failed} refused; audited as {who}")
        if failed:
            raise typer.Exit(1)
