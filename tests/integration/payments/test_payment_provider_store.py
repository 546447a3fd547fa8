"""payment_providers on embedded Postgres: secrets encrypted at rest, readable with the key only."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from cryptography.fernet import Fernet

from adapters.payments.registry import PostgresProviderStore, ProviderAccount, Secret

pytestmark = pytest.mark.integration


def test_secret_is_encrypted_at_rest_and_round_trips_with_the_key(
    migrated_database_url: str,
) -> None:
    database_url = migrated_database_url
    secret = f"rzp_live_{uuid.uuid4().hex}"
    key = Fernet.generate_key().decode()

    def connect() -> psycopg.Connection:
        return psycopg.connect(database_url)

    store = PostgresProviderStore.from_key(connect, key)
    account = ProviderAccount(
        "shop-in/razorpay", "shop-in", "razorpay", "rzp_key", Secret(secret), {"api_base": "x"}
    )
    store.put(account)
    store.put(account)  # re-registering (e.g. a rotated secret) replaces, never duplicates

    with connect() as conn:
        rows = conn.execute("SELECT * FROM payment_providers").fetchall()
    assert len(rows) == 1
    assert secret.encode() not in repr(rows).encode() and secret not in repr(rows)

    (loaded,) = store.load("shop-in")
    assert loaded.secret.reveal() == secret and loaded.options == {"api_base": "x"}
    assert store.load("other-tenant") == []
    assert key not in repr(store)

    wrong = PostgresProviderStore(connect, Secret(Fernet.generate_key().decode()))
    with pytest.raises(RuntimeError, match="shop-in/razorpay") as info:
        wrong.load()
    assert secret not in str(info.value)
    with pytest.raises(RuntimeError, match="PAYMENT_PROVIDERS_KEY"):
        PostgresProviderStore.from_key(connect, None)
