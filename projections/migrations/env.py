"""Alembic environment, driven only programmatically by `projections.migrate` (no alembic.ini).

The caller passes an open SQLAlchemy connection (inside its transaction) and the target schema;
migrations create unqualified names, which land in that schema through search_path. That is what
lets one set of migrations build both the live schema and a replay's shadow schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from projections.tables import metadata

config = context.config
connection = config.attributes["connection"]
schema: str = config.attributes["schema"]
quoted = connection.dialect.identifier_preparer.quote(schema)
connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
connection.execute(text(f"SET LOCAL search_path TO {quoted}"))
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=schema,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
