"""One schema history (db/migrations): it builds every table the code uses, upgrades a database
the previous release built at run time, does nothing the second time, and replicas starting
together take turns under its advisory lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from db.migrate import (
    LOCK_KEY,
    READ_MODELS,
    current_revision,
    head_revision,
    owned_revision,
    sqlalchemy_url,
    upgrade,
    upgrade_read_models,
)
from infra.cli import app
from infra.settings import Settings
from projections.tables import metadata
from tests.conftest import fresh_database
from tests.sql_usage import queried_tables

pytestmark = pytest.mark.integration

LEGACY_DDL = Path(__file__).with_name("legacy_schema.sql")
VIEWS = ["checkout_funnel", "daily_revenue", "step_latency"]


def _relations(url: str, schema: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'p')"
            " AND c.relname <> 'alembic_version'",
            (schema,),
        ).fetchall()
    return {r[0] for r in rows}


def _fingerprint(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Columns, constraints and indexes of every schema we own: equal means the same schema."""
    schemas = ("public", READ_MODELS)
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type, is_nullable,"
            " column_default FROM information_schema.columns"
            " WHERE table_schema = ANY(%s) ORDER BY 1, 2, 3",
            (list(schemas),),
        ).fetchall()
        constraints = conn.execute(
            "SELECT n.nspname, t.relname, c.conname, pg_get_constraintdef(c.oid)"
            " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = ANY(%s) ORDER BY 1, 2, 3, 4",
            (list(schemas),),
        ).fetchall()
        indexes = conn.execute(
            "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = ANY(%s) ORDER BY 1, 2, 3",
            (list(schemas),),
        ).fetchall()
        views = conn.execute(
            "SELECT table_schema, table_name, view_definition FROM information_schema.views"
            " WHERE table_schema = ANY(%s) ORDER BY 1, 2",
            (list(schemas),),
        ).fetchall()
    return {"columns": columns, "constraints": constraints, "indexes": indexes, "views": views}


def test_upgrade_from_empty_creates_exactly_the_tables_the_code_queries(
    database_url: str,
) -> None:
    assert current_revision(database_url) is None and owned_revision(database_url) is None
    assert upgrade(database_url) == head_revision()
    assert owned_revision(database_url) == head_revision()
    owned, read_models = _relations(database_url, "public"), _relations(database_url, READ_MODELS)
    assert owned and read_models and not owned & read_models
    # Derived from the modules' SQL, so a new table in the code without a migration (or a
    # migration creating a table nothing uses) fails here.
    assert owned | read_models == queried_tables()
    assert {"stock", "stock_audit", "api_keys", "payment_refunds"} <= owned
    assert {"checkouts", "projection_offsets", *VIEWS} <= read_models


def test_read_models_match_their_declaration(database_url: str) -> None:
    upgrade(database_url)
    # A second read-model schema in the same database (as a test's reference projector makes):
    # its walk builds read models only; the owned tables are at head already and stay put.
    assert upgrade(database_url, schema="proj_check") == head_revision()
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SET search_path TO proj_check"))
            context = MigrationContext.configure(conn, opts={"include_schemas": False})
            diff = [
                d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)
            ]
            assert diff == []
    finally:
        engine.dispose()
    assert sorted(v for v in _relations(database_url, "proj_check") if v in VIEWS) == VIEWS


def test_a_database_built_by_the_previous_code_upgrades_in_place(
    settings: Settings, database_url: str
) -> None:
    # What the previous release left: the read models at 0001 and the tables its modules made.
    assert upgrade(database_url, "0001") == "0001"
    with psycopg.connect(database_url) as conn:
        conn.execute(LEGACY_DDL.read_text())
        conn.execute("INSERT INTO stock (sku, on_hand, reserved) VALUES ('SKU-OLD', 38, 3)")
        conn.execute(
            "INSERT INTO api_keys (key_id, tenant_id, name, key_hash, key_hint)"
            " VALUES ('key_old', 'shop', 'old', '\\x00', 'sk_old')"
        )
    assert upgrade(database_url) == head_revision()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT on_hand, reserved FROM stock").fetchall() == [(38, 3)]
        assert conn.execute("SELECT key_id FROM api_keys").fetchall() == [("key_old",)]
    assert settings.database_url
    with fresh_database(settings.database_url) as fresh:
        upgrade(fresh)
        assert _fingerprint(database_url) == _fingerprint(fresh)


def test_upgrading_twice_is_a_no_op(database_url: str) -> None:
    assert upgrade(database_url) == head_revision()
    before = _fingerprint(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO stock (sku, on_hand) VALUES ('SKU-KEEP', 5)")
    assert upgrade(database_url) == head_revision()
    assert _fingerprint(database_url) == before
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT sku, on_hand FROM stock").fetchall() == [("SKU-KEEP", 5)]
        for schema in ("public", READ_MODELS):
            versions = conn.execute(f"SELECT version_num FROM {schema}.alembic_version")
            assert versions.fetchall() == [(head_revision(),)]


def _wait_for_lock_waiters(url: str, count: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND NOT l.granted"
                " AND d.datname = current_database()"
            ).fetchone()
            if row and row[0] >= count:
                return
            time.sleep(0.02)  # polling the lock table, not waiting for time to pass
    raise AssertionError(f"fewer than {count} upgrades waited for the migration lock")


def test_concurrent_starts_take_turns_under_the_advisory_lock(database_url: str) -> None:
    starts = 6
    results: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(upgrade(database_url))
        except BaseException as e:  # collected: a failure in a thread must fail the test
            errors.append(e)

    with psycopg.connect(database_url, autocommit=True) as holder:
        # Hold the lock, as a replica in mid-migration would; every start must queue behind it.
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (LOCK_KEY,))
        threads = [threading.Thread(target=start) for _ in range(starts)]
        for t in threads:
            t.start()
        _wait_for_lock_waiters(database_url, starts)
        assert results == [] and errors == []  # none got past the lock
        holder.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK_KEY,))
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert results == [head_revision()] * starts
    assert _relations(database_url, "public") | _relations(database_url, READ_MODELS) == (
        queried_tables()
    )


def test_a_replay_shadow_gets_the_read_models_only(database_url: str) -> None:
    shadow = "proj_shadow_test"
    assert upgrade_read_models(database_url, shadow) == head_revision()
    assert owned_revision(database_url) is None  # a shadow build never touches owned tables
    assert _relations(database_url, "public") == set()
    upgrade(database_url)
    assert _relations(database_url, shadow) == _relations(database_url, READ_MODELS)


def test_saga_db_upgrade_and_current(database_url: str) -> None:
    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    result = runner.invoke(app, ["db", "current"], env=env)
    assert result.exit_code == 1 and "owned tables: none" in result.output
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert f"-> {head_revision()}" in result.output
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0 and "nothing to do" in result.output
    result = runner.invoke(app, ["db", "current"], env=env)
    assert result.exit_code == 0, result.output
    assert f"owned tables: {head_revision()}  read models: {head_revision()}" in result.output
