"""The schema has one writer: the Alembic history in db/migrations. Static checks of the source."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from db.migrate import READ_MODELS, alembic_config
from projections.tables import DEFAULT_SCHEMA
from tests.sql_usage import DDL, queried_tables, runtime_ddl


def test_no_module_outside_the_migrations_creates_or_alters_a_table() -> None:
    assert runtime_ddl() == []


def test_the_ddl_check_recognises_what_it_forbids() -> None:
    for statement in (
        "CREATE TABLE IF NOT EXISTS x (id int)",
        "create unique index if not exists i on x (id)",
        "ALTER TABLE stock ADD COLUMN note text",
        "\n  CREATE VIEW v AS SELECT 1",
    ):
        assert DDL.search(statement), statement
    for harmless in ("ALTER SCHEMA a RENAME TO b", "LOCK TABLE t IN EXCLUSIVE MODE"):
        assert not DDL.search(harmless), harmless


def test_the_history_is_one_line_from_one_base_to_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_bases()) == 1 and len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert all(not isinstance(r.down_revision, tuple) for r in revisions)  # no merges


def test_the_table_scan_sees_tables_named_in_every_style() -> None:
    tables = queried_tables()
    assert {"stock", "reservations", "audit_log"} <= tables  # plain SQL text
    assert {"payments", "orders"} <= tables  # sql.SQL("... {payments} ...").format(...)
    assert "projection_meta" in tables  # sql.Identifier(schema, "projection_meta")
    assert "purchased_at" not in tables and "unnest" not in tables


def test_the_read_model_schema_has_one_name() -> None:
    assert READ_MODELS == DEFAULT_SCHEMA
