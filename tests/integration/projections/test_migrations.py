"""The migrated database matches projections.tables (no drift), and upgrades are idempotent."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from projections.migrate import head_revision, sqlalchemy_url, upgrade
from projections.tables import metadata

pytestmark = pytest.mark.integration


def test_migrations_build_exactly_the_declared_tables(database_url: str) -> None:
    assert upgrade(database_url, "proj_check") == head_revision()
    assert upgrade(database_url, "proj_check") == head_revision()  # idempotent
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SET search_path TO proj_check"))
            context = MigrationContext.configure(conn, opts={"include_schemas": False})
            diff = [
                d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)
            ]
            assert diff == []
            views = (
                conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.views "
                        "WHERE table_schema = 'proj_check' ORDER BY 1"
                    )
                )
                .scalars()
                .all()
            )
            assert views == ["checkout_funnel", "daily_revenue", "step_latency"]
    finally:
        engine.dispose()
