"""Alembic environment, driven only programmatically by `db.migrate` (no alembic.ini).

The caller passes an open SQLAlchemy connection (inside its transaction), the read-model schema
and which part of the history this walk applies (db/migrate.py):
- `owned`: the adapters' and the API's tables, in the schema the connection resolves unqualified
  names to (`current_schema()`, normally `public`), where those modules' unqualified queries find
  them; tracked by the `alembic_version` there.
- `read_models`: unqualified names land in the given schema through search_path, so one set of
  migrations builds both the live read models and a replay's shadow; tracked by the
  `alembic_version` in that schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
part: str = config.attributes["part"]
quote = connection.dialect.identifier_preparer.quote
if part == "owned":
    # Resolved before any SET LOCAL of ours: a read-model walk may follow in this transaction.
    target = connection.execute(text("SELECT current_schema()")).scalar() or "public"
else:
    target = config.attributes["schema"]
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote(target)}"))
connection.execute(text(f"SET LOCAL search_path TO {quote(target)}"))
context.configure(connection=connection, version_table_schema=target, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
