"""The database schema: one Alembic history for every table the project owns (db.migrate)."""
