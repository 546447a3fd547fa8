"""The one Alembic history (db/migrations/versions) and what its revisions share.

The history is walked once per target (db/migrate.py): each revision changes the owned tables,
the read models, or both, and does nothing on a walk of the other part. search_path already
points at the walk's target schema (env.py), so DDL uses unqualified names.
"""

from __future__ import annotations

from alembic import context


def applies_to(part: str) -> bool:
    """True on the walk that migrates `part` ("owned" or "read_models")."""
    return bool(context.config.attributes["part"] == part)
