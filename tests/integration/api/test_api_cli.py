"""`saga api-key create` against the embedded PostgreSQL: the key works and is stored hashed."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from api.keys import PostgresKeyStore, hash_key
from infra.cli import app

pytestmark = pytest.mark.integration


def test_api_key_create_prints_the_key_once_and_stores_its_hash(database_url: str) -> None:
    result = CliRunner().invoke(
        app, ["api-key", "create", "--tenant", "shop-cli"], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("sk_") and len(key) > 40

    def connect() -> psycopg.Connection:
        return psycopg.connect(database_url)

    found = PostgresKeyStore(connect).lookup(key)
    assert found is not None and found.tenant_id == "shop-cli"
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT key_hash, key_hint FROM api_keys").fetchall()
    assert stored == [(hash_key(key), key[:7])]
    assert key not in str(stored)
