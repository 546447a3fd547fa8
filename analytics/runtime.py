"""The faust-streaming app: the thin runtime around the pure aggregation (ADR 0018).

One agent reads checkout.events (read_committed, through the project's Avro serde as a faust
codec) and adds each event's facts to two windowed tables, tumbling 1-minute and hopping
15-minute (every 5), keyed by the source partition so a table's changelog partition is the
one its input came from. A timer flushes windows to PostgreSQL and sends due alerts to
ops.alerts. Event time is the envelope's occurred_at, so a replay lands in the same windows.

Built by `build_app` (called from infra/analytics_wiring.py); nothing connects at import.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import faust
from faust.serializers.codecs import Codec

from analytics.alerts import Breach, Thresholds, breach_window
from analytics.facts import Fact, State, add, observe
from analytics.flush import Flusher
from analytics.metrics import Rows
from analytics.store import MetricsStore
from analytics.transport import ReadCommittedTransport
from analytics.windows import MINUTELY, QUARTER_HOURLY, window_starts
from events import messages as m
from events.envelope import Envelope
from events.serde import DecodeError, Serde

log = logging.getLogger(__name__)

PRODUCER = "analytics"


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    app_id: str  # the consumer group, and the prefix of faust's changelog topics
    bootstrap_servers: str
    source_topic: str
    alerts_topic: str
    partitions: int  # of the source topic: faust's changelogs must match it
    replication_factor: int
    data_dir: Path
    web_host: str
    web_port: int
    flush_interval_s: float
    commit_interval_s: float
    # A SIGKILLed member holds its partitions this long: short, as one replica is the norm.
    session_timeout_s: float
    thresholds: Thresholds
    isolation_level: str = "read_committed"
    retention_ms: int = 48 * 3600 * 1000  # windows kept in memory behind the newest event


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record the serde could not read, as the codec hands it to the agent."""

    reason: str


class EnvelopeCodec(Codec):
    """The project's Serde (single-object Avro or the schema registry) as a faust codec.

    A record the serde cannot read becomes `Unreadable` instead of raising: faust crashes the
    agent on a decode error (its supervisor restarts it), and analytics, a reader of the record
    whose writer already dead-letters what it cannot apply, only logs and counts it."""

    def __init__(self, serde: Serde, topic: str) -> None:
        super().__init__()
        self._serde = serde
        self._topic = topic

    def _dumps(self, obj: Any) -> bytes:
        return self._serde.encode(obj, self._topic)

    def _loads(self, s: bytes) -> Any:
        try:
            return self._serde.decode(s, self._topic)
        except DecodeError as e:
            return Unreadable(str(e))


class AnalyticsApp(faust.App):
    """faust.App with our transport; `isolation_level` is read by its consumer thread."""

    isolation_level: str = "read_committed"
    analytics_flusher: Flusher | None = None

    def _new_transport(self) -> ReadCommittedTransport:
        return ReadCommittedTransport(self.conf.broker_consumer, self)


def _add(current: State | None, facts: tuple[Fact, ...]) -> State:
    return add(current, facts)


def _json_rows(windows: dict[tuple[int, int], Rows], last: int) -> list[dict[str, Any]]:
    out = []
    for (start, end), found in sorted(windows.items())[-last:]:
        metrics: dict[str, dict[str, int | str]] = {}
        for (metric, dimension), value in sorted(found.items()):
            metrics.setdefault(metric, {})[dimension] = (
                str(value) if isinstance(value, Decimal) else value
            )
        out.append({"window_start": start, "window_end": end, "metrics": metrics})
    return out


def _start_ms(key: Any) -> int:
    _partition, (start_s, _end_s) = key
    return round(float(start_s)) * 1000


def alert_envelope(breach: Breach) -> Envelope[m.OpsAlert]:
    return Envelope.new(
        m.OpsAlert(
            alert=breach.name,
            dimension=breach.dimension,
            window_start=breach.window_start,
            window_end=breach.window_end,
            value=str(breach.value),
            threshold=str(breach.threshold),
            samples=breach.samples,
        ),
        occurred_at=breach.window_end,
        producer=PRODUCER,
        message_id=breach.alert_id,
    )


def build_app(config: AnalyticsConfig, serde: Serde, store: MetricsStore) -> AnalyticsApp:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app = AnalyticsApp(
        config.app_id,
        broker=[f"kafka://{s.strip()}" for s in config.bootstrap_servers.split(",")],
        store="memory://",
        datadir=str(config.data_dir),
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication_factor,
        # checkout.events and ops.alerts are provisioned by `saga topics ensure` with their
        # retention; faust creates only its own changelog topics.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=config.web_host,
        web_host=config.web_host,
        web_port=config.web_port,
        producer_acks=-1,
        broker_commit_interval=config.commit_interval_s,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        autodiscover=False,
    )
    app.isolation_level = config.isolation_level
    source = app.topic(
        config.source_topic,
        key_serializer="raw",
        value_serializer=EnvelopeCodec(serde, config.source_topic),
        allow_empty=False,
    )
    alerts = app.topic(
        config.alerts_topic,
        key_serializer="raw",
        value_serializer=EnvelopeCodec(serde, config.alerts_topic),
    )
    tables: dict[str, Any] = {
        MINUTELY.name: app.Table("minutely", default=dict).tumbling(MINUTELY.size_ms / 1000),
        QUARTER_HOURLY.name: app.Table("quarter_hourly", default=dict).hopping(
            QUARTER_HOURLY.size_ms / 1000, QUARTER_HOURLY.step_ms / 1000
        ),
    }
    # checkout_id -> {"step/attempt": started at ms}: a step's start and end often fall in
    # different windows; dropped when the checkout ends.
    starts = app.Table("step_starts", default=dict)
    flusher = Flusher(store, config.thresholds)
    # Window starts (ms) that took facts since the last flush: only those are recomputed. All
    # are, after a start or a rebalance: what the changelogs restored must reach PostgreSQL.
    touched: dict[str, set[int]] = {spec.name: set() for spec in (MINUTELY, QUARTER_HOURLY)}
    flushed_generation: list[object] = [None]

    # Event-time retention. The newest minute seen per source partition (changelogged, so a
    # restart knows it before a redelivered old event arrives): windows that ended more than
    # `retention_ms` before it leave the tables (their PostgreSQL rows stay), and an event
    # older than that is not counted, so it can never rebuild a dropped window from a part of
    # its facts and overwrite complete rows. faust's own expiry judges by the wall clock, which
    # would drop the windows of a replayed history as soon as they were made.
    marks = app.Table("watermarks", default=int)
    # partition -> table -> window start ms -> the table's key, for the windows to drop.
    kept: dict[int, dict[str, dict[int, Any]]] = {}
    late = [0]
    unreadable = [0]

    def keep(partition: int, name: str, key: Any) -> None:
        kept.setdefault(partition, {}).setdefault(name, {})[_start_ms(key)] = key

    def drop_before(partition: int, cut: int) -> None:
        for spec in (MINUTELY, QUARTER_HOURLY):
            windows = kept.get(partition, {}).get(spec.name, {})
            table = tables[spec.name].table
            for start in [s for s in windows if s + spec.size_ms <= cut]:
                key = windows.pop(start)
                if key in table.data:
                    del table[key]
                flusher.forget(spec.name, (start, start + spec.size_ms))

    def apply(envelope: Envelope[Any], partition: int) -> None:
        part = str(partition)
        minute = envelope.occurred_at - envelope.occurred_at % 60_000
        if minute > marks[part]:
            marks[part] = minute
            drop_before(partition, minute - config.retention_ms)
        if envelope.occurred_at < marks[part] - config.retention_ms:
            late[0] += 1
            return
        cid = envelope.checkout_id
        open_starts: dict[str, int] = dict(starts[cid]) if cid in starts else {}
        seen = observe(envelope, open_starts)
        if seen.start is not None:
            starts[cid] = {**open_starts, seen.start[0]: seen.start[1]}
        if seen.forget_starts and cid in starts:
            del starts[cid]
        if seen.facts:
            at = envelope.occurred_at / 1000
            for spec in (MINUTELY, QUARTER_HOURLY):
                table = tables[spec.name]
                table.relative_to(at)[part].apply(_add, seen.facts)
                touched[spec.name].update(window_starts(spec, envelope.occurred_at))
                for window_range in table.table.window.ranges(at):
                    keep(partition, spec.name, (part, window_range))

    @app.agent(source)
    async def aggregate(stream: Any) -> None:
        async for event in stream.events():
            if isinstance(event.value, Envelope):
                apply(event.value, event.message.partition)
            else:
                unreadable[0] += 1
                log.error(
                    "skipped an unreadable record at %s[%s]@%s: %s",
                    event.message.topic,
                    event.message.partition,
                    event.message.offset,
                    getattr(event.value, "reason", type(event.value).__name__),
                )

    def ready() -> bool:
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        return bool(recovery.completed.is_set() and not app.in_recovery and not app.rebalancing)

    @app.timer(config.flush_interval_s)
    async def flush() -> None:
        if not ready():
            return
        generation = getattr(app, "consumer_generation_id", None)
        everything = flushed_generation[0] != generation or flusher.flushes == 0
        wanted = {name: set(starts_) for name, starts_ in touched.items()}
        for starts_ in touched.values():
            starts_.clear()
        # An alert is judged on every minute of its breach window, not only the new ones.
        breach_windows = {breach_window(start) for start in wanted[MINUTELY.name]}

        def needed(name: str, key: Any) -> bool:
            if everything:
                return True
            if name == MINUTELY.name:
                return breach_window(_start_ms(key)) in breach_windows
            return _start_ms(key) in wanted[name]

        # A copy taken between two events: the agent never runs while this line does.
        snapshot = {
            name: [(key, state) for key, state in table.table.data.items() if needed(name, key)]
            for name, table in tables.items()
        }
        if everything:  # windows restored from the changelogs are dropped in time, too
            for name, items in snapshot.items():
                for key, _state in items:
                    keep(int(key[0]), name, key)
        try:
            due = await asyncio.to_thread(flusher.flush, snapshot)
        except Exception:
            for name, starts_ in wanted.items():  # PostgreSQL away: try them next time
                touched[name].update(starts_)
            raise
        flushed_generation[0] = generation
        for breach in due:
            pending = await alerts.send(key=breach.name.encode(), value=alert_envelope(breach))
            await pending  # delivered (acks=all) before it is recorded as sent
            await asyncio.to_thread(flusher.sent, breach)
            log.warning(
                "alert %s (%s) %s over %s..%s: %s vs %s",
                breach.name,
                breach.dimension,
                breach.samples,
                breach.window_start,
                breach.window_end,
                breach.value,
                breach.threshold,
            )

    @app.page("/analytics")
    async def live(web: Any, request: Any) -> Any:
        return web.json(
            {
                "minutely": _json_rows(flusher.live.get(MINUTELY.name, {}), 15),
                "quarter_hourly": _json_rows(flusher.live.get(QUARTER_HOURLY.name, {}), 4),
                "ready": ready(),
                "flushes": flusher.flushes,
                "late_events_not_counted": late[0],
                "unreadable_records": unreadable[0],
            }
        )

    app.analytics_flusher = flusher  # for the status view and tests in-process
    return app
