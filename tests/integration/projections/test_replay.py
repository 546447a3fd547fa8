"""Replay into a shadow schema, interrupted and resumed, swapped in under a running projector."""

from __future__ import annotations

import threading

import psycopg
import pytest

from events.serde import make_serde
from infra.settings import Settings
from projections.projector import Projector
from projections.replay import ReplayProgress, replay
from tests.integration.projections.helpers import (
    catch_up,
    new_topics,
    produce_stream,
    projector_config,
    snapshot,
)
from tests.integration.projections.streams import Scenario, checkout_stream, mixed_streams

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


def test_replay_from_the_beginning_swaps_in_identical_tables(
    settings: Settings, database_url: str, unique_id: str
) -> None:
    assert settings.kafka_bootstrap_servers
    bootstrap = settings.kafka_bootstrap_servers
    topics = new_topics(bootstrap)
    produce_stream(bootstrap, SERDE, topics, mixed_streams(f"co-{unique_id}", 10))
    live = Projector(projector_config(bootstrap, database_url, topics), SERDE)
    live.start()
    try:
        catch_up(live)
        before = snapshot(database_url)

        # Interrupted after its first progress report: the shadow keeps its own offsets...
        stop = threading.Event()

        def interrupt(_p: ReplayProgress) -> None:
            stop.set()

        first = replay(
            bootstrap=bootstrap,
            database_url=database_url,
            serde=SERDE,
            topics=topics,
            on_progress=interrupt,
            stop=stop,
            batch_size=20,
        )
        assert not first.swapped
        # ...and the next run resumes that shadow, catches up and swaps it in.
        reports: list[ReplayProgress] = []
        second = replay(
            bootstrap=bootstrap,
            database_url=database_url,
            serde=SERDE,
            topics=topics,
            on_progress=reports.append,
        )
        assert second.resumed and second.shadow == first.shadow and second.swapped
        assert reports[-1].remaining == 0
        assert snapshot(database_url) == before
        with psycopg.connect(database_url) as conn:
            leftovers = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, 'proj_')"
            ).fetchall()
        assert leftovers == []

        # The live projector keeps going on the swapped-in schema (it re-seeks to its offsets).
        late = f"co-{unique_id}-late"
        produce_stream(bootstrap, SERDE, topics, checkout_stream(Scenario(late)))
        catch_up(live)
        assert any(row[0] == late for row in snapshot(database_url)["checkouts"])
    finally:
        live.close()
