"""Rebuild a projection from Kafka into a shadow schema, then swap it in atomically.

The live schema keeps serving (and its projector keeps applying) during the rebuild. The shadow
schema (`proj_shadow_<utc timestamp>`) has its own `projection_offsets`, so an interrupted replay
resumes where it stopped: run the same command again. When the shadow has caught up with the end
offsets, one PostgreSQL transaction renames the live schema away and the shadow into its place;
readers resolve names per statement, so the next query sees the new tables. The live projector
notices on its next batch that the stored offsets are not where its consumer is and re-seeks to
them (projections/projector.py), so nothing between the catch-up and the swap is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from db import migrate
from events.serde import Serde
from projections import store
from projections.apply import Topics
from projections.projector import PROJECTION, Projector, ProjectorConfig
from projections.store import TopicPartitionKey
from projections.tables import DEFAULT_SCHEMA

SHADOW_PREFIX = "proj_shadow_"
RETIRED_PREFIX = "proj_retired_"
PROJECTIONS = {PROJECTION: DEFAULT_SCHEMA}
"""Projection name -> live schema. One projection today: every read model in one schema, so
one swap moves tables, views and tracking rows together."""


@dataclass(frozen=True)
class ReplayProgress:
    applied: int  # events applied by this run
    remaining: int  # records between the shadow's offsets and the end offsets
    total: int  # remaining when this run started
    events_per_s: float


@dataclass(frozen=True)
class ReplayReport:
    shadow: str
    resumed: bool
    applied: int
    swapped: bool
    retired: str | None  # the old live schema, when kept


def _now_tag() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def find_resumable(conn: psycopg.Connection[Any], projection: str) -> str | None:
    """The newest unfinished shadow of `projection`, if an earlier replay was interrupted."""
    schemas = [
        r[0]
        for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY nspname DESC",
            (SHADOW_PREFIX + "%",),
        ).fetchall()
    ]
    for schema in schemas:
        meta = read_meta(conn, schema)
        if meta.get("replay_of") == projection and meta.get("status") == "building":
            return schema
    return None


def read_meta(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    try:
        with conn.transaction():
            rows = conn.execute(
                sql.SQL("SELECT key, value FROM {}").format(
                    sql.Identifier(schema, "projection_meta")
                )
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {k: v for k, v in rows}


def _write_meta(conn: psycopg.Connection[Any], schema: str, values: dict[str, str]) -> None:
    with conn.transaction():
        store.use_schema(conn, schema)
        conn.cursor().executemany(
            "INSERT INTO projection_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            list(values.items()),
        )


def start_offsets(
    bootstrap: str, topics: Topics, from_timestamp_ms: int | None
) -> dict[TopicPartitionKey, int]:
    """Every partition of the projection's topics, at the beginning or at a timestamp."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "replay-offsets"})
    try:
        names = (topics.checkout_events, topics.orders_events)
        metadata = consumer.list_topics(timeout=10)
        keys = [(name, p) for name in names for p in sorted(metadata.topics[name].partitions or {})]
        if from_timestamp_ms is None:
            return dict.fromkeys(keys, 0)
        found = consumer.offsets_for_times(
            [TopicPartition(t, p, from_timestamp_ms) for t, p in keys], timeout=10
        )
        out = {}
        for tp in found:
            if tp.offset < 0:  # nothing at or after the timestamp: start at the end
                tp.offset = consumer.get_watermark_offsets(tp, timeout=10)[1]
            out[(tp.topic, tp.partition)] = tp.offset
        return out
    finally:
        consumer.close()


def swap(
    conn: psycopg.Connection[Any], shadow: str, live: str, *, keep_old: bool = False
) -> str | None:
    """Make `shadow` the live schema in one transaction; returns the retired schema's name
    if kept. The live projector's in-flight batch finishes first (its offset rows are locked)."""
    retired = RETIRED_PREFIX + _now_tag()
    ident = sql.Identifier
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (live,)).fetchone()
        if exists:
            conn.execute(
                sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(ident(live, "projection_offsets"))
            )
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(ident(live), ident(retired))
            )
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(ident(shadow), ident(live)))
        store.use_schema(conn, live)
        conn.cursor().executemany(
            "INSERT INTO projection_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [("status", "live"), ("swapped_at", datetime.now(UTC).isoformat())],
        )
    if not exists:
        return None
    if keep_old:
        return retired
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(ident(retired)))
    return None


def replay(
    *,
    bootstrap: str,
    database_url: str,
    serde: Serde,
    projection: str = PROJECTION,
    from_timestamp_ms: int | None = None,
    fresh: bool = False,
    topics: Topics | None = None,
    live_schema: str | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    stop: threading.Event | None = None,
    do_swap: bool = True,
    keep_old: bool = False,
    batch_size: int = 2000,
) -> ReplayReport:
    """Build (or resume) a shadow of `projection`, catch up to the end offsets, swap it in."""
    topics = topics or Topics()
    live = live_schema or PROJECTIONS[projection]
    stop = stop or threading.Event()
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        shadow = None if fresh else find_resumable(conn, projection)
        resumed = shadow is not None
        if shadow is None:
            shadow = SHADOW_PREFIX + _now_tag()
        migrate.upgrade_read_models(database_url, shadow)
        starts = start_offsets(bootstrap, topics, from_timestamp_ms)
        with conn.transaction():
            store.use_schema(conn, shadow)
            store.init_offsets(conn, projection, starts)  # a resumed shadow keeps its own
        if not resumed:
            mode = "beginning" if from_timestamp_ms is None else f"timestamp:{from_timestamp_ms}"
            _write_meta(
                conn,
                shadow,
                {
                    "replay_of": projection,
                    "status": "building",
                    "from": mode,
                    "started_at": datetime.now(UTC).isoformat(),
                },
            )
        applied = _catch_up(
            ProjectorConfig(
                bootstrap_servers=bootstrap,
                database_url=database_url,
                projection=projection,
                schema=shadow,
                group=f"replay-{shadow}",
                topics=topics,
                batch_size=batch_size,
                partitions=sorted(starts),
                migrate=False,
            ),
            serde,
            on_progress,
            stop,
        )
        if stop.is_set() or not do_swap:
            return ReplayReport(shadow, resumed, applied, False, None)
        retired = swap(conn, shadow, live, keep_old=keep_old)
        return ReplayReport(shadow, resumed, applied, True, retired)


def _catch_up(
    config: ProjectorConfig,
    serde: Serde,
    on_progress: Callable[[ReplayProgress], None] | None,
    stop: threading.Event,
) -> int:
    projector = Projector(config, serde)
    projector.start()
    try:
        started = time.monotonic()
        total = sum(projector.lag().values())
        last_report = 0.0
        while not stop.is_set():
            handled = projector.step()
            now = time.monotonic()
            if handled and now - last_report < 0.25:
                continue
            last_report = now
            remaining = sum(projector.lag().values())
            if on_progress is not None:
                rate = projector.applied / max(now - started, 1e-6)
                on_progress(ReplayProgress(projector.applied, remaining, total, rate))
            if remaining == 0:
                break
        return projector.applied
    finally:
        projector.close()
