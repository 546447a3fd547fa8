"""Apply the project's one Alembic history programmatically (no alembic.ini).

Two kinds of table live in one history (docs/decisions/0007-projections.md, "One schema
history"):
- the **owned tables** of the adapters and the API (stock, reservations, ledgers, API keys, ...)
  in the database's default schema (`current_schema()`, normally `public`), where those modules
  find them by their unqualified names;
- the **read models** in a schema chosen at run time: `projections` when live, a replay's
  `proj_shadow_<ts>` while it rebuilds.

Each revision says which of the two it changes, and each is tracked on its own: the owned
tables by `alembic_version` in their schema, every read-model schema by the `alembic_version` in
it (where the history has always kept it, so a database of an earlier release continues from the
revision it is at). An upgrade walks the one history twice, once per target: the owned tables
once per database, the read models once per schema, so a second read-model schema (a replay's
shadow, a test's reference) never re-runs owned-table DDL.

`upgrade(url)` brings both to head: `saga db upgrade`, and every service at start (workers,
projector, API). `upgrade_read_models(url, shadow)` builds only the read models in a replay's
shadow; the owned tables are never copied into a shadow.

Concurrent callers (replicas starting together) are serialised by one advisory lock per
database, and each upgrade is one transaction (PostgreSQL has transactional DDL): a crash
leaves the schema as it was, and the caller that waited finds it at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
READ_MODELS = "projections"
"""The live read-model schema (projections.tables.DEFAULT_SCHEMA; a test keeps them equal)."""
LOCK_KEY = "saga:migrations"
"""One lock for the whole database: an upgrade touches the owned tables whatever schema it
builds read models in."""


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


OWNED = "owned"
READ_MODEL = "read_models"


def _upgrade(database_url: str, schema: str, revision: str, parts: tuple[str, ...]) -> str:
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": LOCK_KEY})
            for part in parts:
                config = alembic_config()
                config.attributes["connection"] = conn
                config.attributes["schema"] = schema
                config.attributes["part"] = part
                command.upgrade(config, revision)
        return current_revision(database_url, schema) or ""
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head", *, schema: str = READ_MODELS) -> str:
    """Bring the owned tables and the read models in `schema` to `revision`, in one
    transaction; returns the read models' revision afterwards (the owned tables' is the same)."""
    return _upgrade(database_url, schema, revision, (OWNED, READ_MODEL))


def upgrade_read_models(database_url: str, schema: str, revision: str = "head") -> str:
    """Only the read models, in `schema` (a replay's shadow)."""
    return _upgrade(database_url, schema, revision, (READ_MODEL,))


def _revision_in(database_url: str, schema: str | None) -> str | None:
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            if schema is None:
                schema = conn.execute(text("SELECT current_schema()")).scalar() or "public"
            context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
            return context.get_current_revision()
    finally:
        engine.dispose()


def current_revision(database_url: str, schema: str = READ_MODELS) -> str | None:
    """The revision of the read models in `schema` (None: none there yet)."""
    return _revision_in(database_url, schema)


def owned_revision(database_url: str) -> str | None:
    """The revision of the owned tables (None: the history never ran on them)."""
    return _revision_in(database_url, None)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
