"""Apply the projections' Alembic migrations programmatically (no alembic.ini).

`upgrade(database_url, schema)` is called by the projector on start, by replay for its shadow
schema, and by `saga db upgrade`. Concurrent callers are serialised by an advisory lock, and the
whole upgrade is one transaction (PostgreSQL has transactional DDL): a crash leaves the schema as
it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from projections.tables import DEFAULT_SCHEMA

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(database_url: str) -> str:
    """DATABASE_URL as libpq spells it -> SQLAlchemy with the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _engine(database_url: str) -> Engine:
    return create_engine(sqlalchemy_url(database_url), poolclass=None)


def upgrade(database_url: str, schema: str = DEFAULT_SCHEMA, revision: str = "head") -> str:
    """Bring `schema` to `revision`; returns the revision it is at afterwards."""
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"mig:{schema}"})
            config = alembic_config()
            config.attributes["connection"] = conn
            config.attributes["schema"] = schema
            command.upgrade(config, revision)
        return current_revision(database_url, schema) or ""
    finally:
        engine.dispose()


def current_revision(database_url: str, schema: str = DEFAULT_SCHEMA) -> str | None:
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
            return context.get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
